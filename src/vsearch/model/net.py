"""``VSearchNet``: full frame → box; crop of the detected region → embedding, hash, category.

Why two passes over one backbone (as in the paper's joint detection + embedding branch):
localising the product is worth more than any backbone choice (docs/measurements.md: recall@10
0.41 on the whole frame vs 0.90 on the product's box). The frame pass runs at a small size
(``frame_size``) because a box needs little detail; the crop is cut from the *input* resolution
with ``roi_align`` so the embedding pass (``crop_size``) sees the product's detail, not a blurred
patch of a small frame. Sharing the backbone keeps the parameter count of one small network and
lets box supervision shape the same features the embedding uses; ``localizer_widths`` gives
the box head its own (narrower) trunk when measurement says that is better.

Inputs are ``float[B, 3, H, W]`` RGB in ``[0, 1]`` (any square-ish size); normalisation happens
inside so exported models take plain pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 (the torch convention)
from torch import nn
from torchvision.ops import roi_align

from vsearch.model.backbones import build_backbone
from vsearch.model.heads import (
    BoxHead,
    CategoryHead,
    EmbeddingHead,
    HashHead,
    decode_boxes,
    decode_proposals,
    pool,
)

# Per-channel statistics of natural photos (ImageNet); any fixed values work from scratch, these
# keep inputs centred for photos of products.
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)
ROI_SAMPLING = 2  # fixed bilinear samples per output pixel: cost independent of box size
MIN_BOX_SIDE = 1e-3  # a detected box never collapses below this share of the side
SECOND = "second_"  # prefix of the second look's outputs (VSearchNet.encode)


@dataclass(frozen=True)
class NetConfig:
    """Everything needed to rebuild the network (saved next to the weights)."""

    categories: tuple[str, ...]
    backbone: str = "narrow"
    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks: int = 1
    stem_stride: int = 2
    localizer_widths: tuple[int, ...] | None = None
    input_size: int = 192
    frame_size: int = 128
    crop_size: int = 96
    crop_margin: float = 0.06
    embedding_dim: int = 128
    bits: int = 256
    box_hidden: int = 64
    dropout: float = 0.1

    @property
    def num_categories(self) -> int:
        return len(self.categories)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["categories"] = list(self.categories)
        d["widths"] = list(self.widths)
        d["localizer_widths"] = list(self.localizer_widths) if self.localizer_widths else None
        return d

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> NetConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown network config keys {sorted(unknown)}")
        d = dict(raw)
        d["categories"] = tuple(d["categories"])
        for key in ("widths", "localizer_widths"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)

    @classmethod
    def from_settings(cls, model: Any, categories: list[str] | tuple[str, ...]) -> NetConfig:
        """From a ``ModelSettings`` section plus the category names the data defines."""
        if len(categories) < 2:
            raise ValueError(f"need at least 2 categories to train a classifier, got {categories}")
        return cls(
            categories=tuple(categories),
            backbone=model.backbone,
            widths=tuple(model.widths),
            blocks=model.blocks,
            stem_stride=model.stem_stride,
            localizer_widths=tuple(model.localizer_widths) if model.localizer_widths else None,
            input_size=model.input_size,
            frame_size=model.frame_size,
            crop_size=model.crop_size,
            crop_margin=model.crop_margin,
            embedding_dim=model.embedding_dim,
            bits=model.bits,
            box_hidden=model.box_hidden,
            dropout=model.dropout,
        )


def grow_boxes(boxes: torch.Tensor, margin: float) -> torch.Tensor:
    """Grow normalised xyxy boxes by ``margin`` of their side on every side, clipped to [0, 1].

    Why: a predicted box that cuts the product's edge loses detail the catalog crop has; a little
    context costs less than a missing edge.
    """
    w = (boxes[:, 2] - boxes[:, 0]).clamp(min=MIN_BOX_SIDE)
    h = (boxes[:, 3] - boxes[:, 1]).clamp(min=MIN_BOX_SIDE)
    grown = torch.stack(
        (
            boxes[:, 0] - margin * w,
            boxes[:, 1] - margin * h,
            boxes[:, 2] + margin * w,
            boxes[:, 3] + margin * h,
        ),
        dim=1,
    )
    return grown.clamp(0.0, 1.0)


def box_crop(images: torch.Tensor, boxes: torch.Tensor, size: int, sampling: int) -> torch.Tensor:
    """``roi_align``'s crop (``aligned=True``, ``sampling``² bilinear samples per output pixel)
    built from ``affine_grid`` + ``grid_sample``, which is differentiable w.r.t. ``boxes``.

    Why: ``roi_align`` gives no gradient to its boxes, so a metric loss on the crop could never
    teach the detector where the product's useful region is (the paper's joint training needs
    that path). Sampling a ``sampling``-times finer grid and averaging it reproduces
    ``roi_align``'s sample points and their mean; border padding matches its clamping at the
    image's edge.

    Args:
        images: ``float[B, C, H, W]``.
        boxes: normalised xyxy ``[B, 4]`` (may require grad).
        size: output side.
        sampling: bilinear samples per output pixel and axis.
    """
    b = images.shape[0]
    # affine_grid maps the output's [-1, 1] square onto the box in the input's [-1, 1] frame
    sx = boxes[:, 2] - boxes[:, 0]
    sy = boxes[:, 3] - boxes[:, 1]
    tx = boxes[:, 0] + boxes[:, 2] - 1
    ty = boxes[:, 1] + boxes[:, 3] - 1
    zero = torch.zeros_like(sx)
    theta = torch.stack((sx, zero, tx, zero, sy, ty), dim=1).view(b, 2, 3)
    fine = size * sampling
    grid = F.affine_grid(theta, [b, images.shape[1], fine, fine], align_corners=False)
    out = F.grid_sample(
        images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=False
    )
    return F.avg_pool2d(out, sampling) if sampling > 1 else out


class VSearchNet(nn.Module):
    """The served network: box, category logits, embedding and hash from one photo."""

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(
            config.backbone, config.widths, config.blocks, config.stem_stride
        )
        # A separate localizer keeps the fine stem: the box head needs its 8x8 grid.
        self.localizer = (
            build_backbone(config.backbone, config.localizer_widths, config.blocks)
            if config.localizer_widths
            else None
        )
        loc_channels = (self.localizer or self.backbone).out_channels
        pooled = 2 * self.backbone.out_channels
        self.box_head = BoxHead(loc_channels, config.box_hidden)
        self.embedding_head = EmbeddingHead(pooled, config.embedding_dim)
        self.hash_head = HashHead(config.embedding_dim, config.bits)
        self.category_head = CategoryHead(pooled, config.num_categories, config.dropout)
        self.register_buffer("mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(PIXEL_STD).view(1, 3, 1, 1), persistent=False)
        # Training may run the convolutional trunks in bfloat16 (2x faster on CPUs with
        # AVX512-BF16); heads, losses and the served/exported model stay in float32.
        self.trunk_dtype: torch.dtype | None = None

    # -- parts (the training loop calls them separately) ------------------------------------
    def _run_trunk(self, trunk: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """A backbone on normalised pixels, in ``trunk_dtype`` when set; float32 out."""
        x = self.normalize(images)
        if self.trunk_dtype is None:
            return trunk(x)
        with torch.autocast(device_type=x.device.type, dtype=self.trunk_dtype):
            return trunk(x).float()

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std

    def to_frame(self, images: torch.Tensor) -> torch.Tensor:
        """Resize photos to the box head's input size."""
        size = self.config.frame_size
        if images.shape[-2:] == (size, size):
            return images
        return F.interpolate(
            images, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )

    def localize(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``frames`` ``[B, 3, frame_size, frame_size]`` in [0, 1] → (heat, cell_boxes)."""
        trunk = self.localizer if self.localizer is not None else self.backbone
        return self.box_head(self._run_trunk(trunk, frames))

    def crop(
        self,
        images: torch.Tensor,
        boxes: torch.Tensor,
        margin: float | None = None,
        *,
        differentiable: bool = False,
        size: int | None = None,
    ) -> torch.Tensor:
        """Cut ``size`` (default ``crop_size``) crops at normalised xyxy ``boxes`` from
        full-resolution ``images``.

        ``differentiable`` samples with :func:`box_crop` (same pixels, gradient w.r.t. the
        boxes) so a loss on the crop can move the box; serving keeps ``roi_align``.
        """
        m = self.config.crop_margin if margin is None else margin
        grown = grow_boxes(boxes, m) if m > 0 else boxes
        side = self.config.crop_size if size is None else size
        if differentiable:
            return box_crop(images, grown, side, ROI_SAMPLING)
        h, w = images.shape[-2:]
        scale = torch.tensor([w, h, w, h], dtype=images.dtype, device=images.device)
        idx = torch.arange(images.shape[0], dtype=images.dtype, device=images.device).unsqueeze(1)
        rois = torch.cat((idx, grown * scale), dim=1)
        return roi_align(images, rois, (side, side), 1.0, ROI_SAMPLING, True)

    def describe(self, crops: torch.Tensor) -> dict[str, torch.Tensor]:
        """``crops`` ``[B, 3, crop_size, crop_size]`` in [0, 1] → embedding, hash, category."""
        pooled = pool(self._run_trunk(self.backbone, crops))
        embedding = self.embedding_head(pooled)
        return {
            "embedding": embedding,
            "hash_logits": self.hash_head(embedding),
            "category_logits": self.category_head(pooled),
        }

    # -- serving ------------------------------------------------------------------------------
    def detect(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised xyxy box of the product in each photo and its confidence."""
        heat, cell_boxes = self.localize(self.to_frame(images))
        return decode_boxes(heat, cell_boxes)

    def look_inside(
        self, images: torch.Tensor, regions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Detect again inside ``regions`` (normalised xyxy), each shown to the box head as a
        whole frame: the product's box in photo coordinates and its confidence.

        Why: a region (a shopper's loose box, or the first detection grown) says where the
        product is, not how tight; seen up close, the product fills more of the box head's
        coarse grid than in the whole photo. The search's second look
        (``search.second_look``) describes this box beside the first.
        """
        frames = self.crop(images, regions, margin=0.0, size=self.config.frame_size)
        inner, scores = decode_boxes(*self.localize(frames))
        origin = regions[:, :2].repeat(1, 2)
        side = (regions[:, 2:] - regions[:, :2]).repeat(1, 2)
        return origin + inner * side, scores

    def propose(
        self,
        images: torch.Tensor,
        k: int,
        iou_threshold: float = 0.5,
        min_score: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to ``k`` candidate product boxes per photo (:func:`decode_proposals`).

        Returns:
            ``boxes`` ``[B, k, 4]`` normalised xyxy and ``scores`` ``[B, k]``, most confident
            first, NaN where fewer survive; slot 0 is :meth:`detect`'s box and score.
        """
        heat, cell_boxes = self.localize(self.to_frame(images))
        return decode_proposals(heat, cell_boxes, k, iou_threshold, min_score)

    def encode(
        self,
        images: torch.Tensor,
        boxes: torch.Tensor | None = None,
        second_look: float | None = None,
    ) -> dict[str, torch.Tensor]:
        """Describe the product region of each photo.

        Args:
            images: ``float[B, 3, H, W]`` in [0, 1].
            boxes: normalised xyxy ``[B, 4]`` to use instead of detecting (e.g. a box the user
                drew, or an evaluation with true boxes); ``None`` detects.
            second_look: also describe the box :meth:`look_inside` finds in each box grown by
                this share per side (one pass of the embedding trunk over both crops).

        Returns:
            ``boxes``, ``box_scores`` (1 where boxes were given), ``embedding`` (L2-normalised),
            ``hash_logits``, ``codes`` (``sign`` of the hash, in {-1, +1}) and
            ``category_logits``; with ``second_look`` the same for the second look, each key
            prefixed :data:`SECOND`.
        """
        if boxes is None:
            boxes, scores = self.detect(images)
        else:
            scores = torch.ones(boxes.shape[0], dtype=images.dtype, device=images.device)
        looks = [(boxes, scores)]
        if second_look is not None:
            looks.append(self.look_inside(images, grow_boxes(boxes, second_look)))
        crops = [self.crop(images, b) for b, _ in looks]
        described = self.describe(crops[0] if len(crops) == 1 else torch.cat(crops))
        n = images.shape[0]
        out: dict[str, torch.Tensor] = {}
        for i, (prefix, (b, sc)) in enumerate(zip(("", SECOND), looks, strict=False)):
            part = (
                described
                if len(looks) == 1
                else {k: v[i * n : (i + 1) * n] for k, v in described.items()}
            )
            part["boxes"], part["box_scores"] = b, sc
            part["codes"] = torch.where(part["hash_logits"] >= 0, 1.0, -1.0).to(images.dtype)
            out.update({prefix + k: v for k, v in part.items()})
        return out

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Full photos → ``encode(images)`` with detected boxes."""
        return self.encode(images)
