"""A servable project in a temporary root: the tiny demo drop, two tiny untrained models and
three index releases (two built by model A, one by model B), each carrying the drop's catalog
and lineage as the nightly's releases do, plus a raw-HTTP helper.

Why the untrained models get their embedding BatchNorm calibrated on the catalog: a freshly
initialised network maps every photo to nearly the same direction (cosine ~0.998), so nothing
could be told apart; centring the pooled features (what one pass of BatchNorm statistics does)
makes the random projection discriminative enough that a catalog photo finds its own listing.
No training, no downloads.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

from tests import kit
from vsearch.contracts import CATALOG, read_table
from vsearch.index.builder import build_release
from vsearch.model.export import save_model, to_float
from vsearch.model.net import pool
from vsearch.registry.promotion import release_data
from vsearch.search.build import encode_catalog
from vsearch.search.encoder import NetEncoder
from vsearch.search.images import decode_images
from vsearch.settings import Settings, load_settings

BITS = kit.TINY_BITS
OVERRIDES = {
    "project": {"threads": 1, "device": "cpu"},
    "index": {"bits": BITS, "keep_releases": 10},
    "model": {"bits": BITS},
    "search": {
        "max_image_bytes": 1_500_000,
        "max_image_pixels": 2_000_000,
        "max_k": 50,
        # An untrained box head: a loose NMS leaves several candidates to pick from.
        "proposals": 3,
        "proposal_iou": 0.9,
        "proposal_min_score": 0.0,
    },
    "serving": {
        "model_source": "path",
        "model_dir": "models/a",
        "max_request_bytes": 2_000_000,
        "max_batch_request_bytes": 4_000_000,
        "max_batch_items": 4,
        "batch_max_latency_ms": 20_000,
        "search_threads": 2,
        "samples": 4,
    },
}


@dataclass
class ServedProject:
    """What the service tests need to know about the project they serve."""

    root: Path
    params: Path
    drop: Path
    settings: Settings
    catalog: object  # pandas DataFrame
    fingerprints: dict[str, str]  # model name -> fingerprint

    @property
    def indexes(self) -> Path:
        return self.root / "indexes"


def _write_params(src: Path, dst: Path) -> Path:
    raw = yaml.safe_load(src.read_text())
    for section, values in OVERRIDES.items():
        raw.setdefault(section, {}).update(values)
    dst.write_text(yaml.safe_dump(raw, sort_keys=False))
    return dst


def _tiny_model(categories: tuple[str, ...], images: torch.Tensor, seed: int, out: Path) -> Path:
    net = kit.tiny_net(categories, seed=seed).eval()
    with torch.no_grad():
        x = to_float(images)
        boxes, _ = net.detect(x)
        pooled = pool(net._run_trunk(net.backbone, net.crop(x, boxes)))
        net.embedding_head.norm.running_mean.copy_(pooled.mean(0))
        net.embedding_head.norm.running_var.copy_(pooled.var(0) + 1e-6)
    save_model(net, out, {"name": "tiny-net", "version": str(seed)})
    return out


@pytest.fixture(scope="module")
def served_project(
    tmp_path_factory: pytest.TempPathFactory, tiny_world: tuple[Path, Path], params_path: Path
) -> ServedProject:
    """Root with params.yaml, models/a + models/b, releases v0001 (CURRENT), v0002 (model A)
    and vbad (model B)."""
    drop = tiny_world[0]
    root = tmp_path_factory.mktemp("served")
    params = _write_params(params_path, root / "params.yaml")
    settings = load_settings(params)
    catalog = read_table(drop, CATALOG)
    categories = tuple(sorted(catalog["category"].astype(str).unique()))
    images = decode_images([drop / p for p in catalog["image"]], kit.TINY_NET["input_size"], 2)
    fingerprints = {}
    embeddings = {}
    for name, seed in (("a", 0), ("b", 1)):
        model_dir = _tiny_model(categories, images, seed, root / "models" / name)
        encoder = NetEncoder.load(model_dir)
        fingerprints[name] = encoder.fingerprint
        embeddings[name] = encode_catalog(encoder, catalog, images)
    indexes = root / "indexes"
    data = release_data(settings, root, [drop])  # the drop's catalog, its path, no groups
    build_release(embeddings["a"], settings.index, indexes, version="v0001", data=data)
    build_release(
        embeddings["a"], settings.index, indexes, version="v0002", activate=False, data=data
    )
    build_release(
        embeddings["b"], settings.index, indexes, version="vbad", activate=False, data=data
    )
    return ServedProject(root, params, drop, settings, catalog, fingerprints)


@pytest.fixture(scope="session")
def raw_http() -> Callable[..., tuple[int, bytes]]:
    """``raw_http(port, head, chunks)`` → ``(status, body)``: see :func:`_raw_request`."""
    return _raw_request


def _raw_request(
    port: int, head: str, chunks: Sequence[bytes] = (), timeout: float = 30
) -> tuple[int, bytes]:
    """Send a hand-made HTTP/1.1 request (headers, then ``chunks`` as they are) and read the
    answer until the server closes: what a client that does not wait for the body sees."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head.encode())
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        data = b""
        while b"\r\n\r\n" not in data or not _complete(data):
            part = sock.recv(65536)
            if not part:
                break
            data += part
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False
