"""Typed settings: ``params.yaml`` read once into validated pydantic models.

Why: every tunable lives in ``params.yaml`` (DVC tracks its keys per stage), and a typo in a key
or a string where a number belongs must fail loudly at start-up, naming the key, instead of
silently falling back to a default deep inside a stage. Entry points (CLI, flows, service) call
:func:`load_settings` once and pass the object down; nothing reads the file at import time.

Environment overrides use ``VSEARCH__<SECTION>__<KEY>=value`` (nested keys joined by ``__``),
so a deployment can point MLflow at Postgres or a build at a Dask cluster without editing files.
pydantic-settings reads and nests the variables; their values are YAML, as in the file.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import EnvSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

ENV_PREFIX = "VSEARCH__"
ENV_NESTING = "__"  # VSEARCH__SECTION__KEY
DEFAULT_PARAMS = Path("params.yaml")


class SettingsError(ValueError):
    """params.yaml (or an override) is missing, malformed or has a wrong key/type."""


class _Section(BaseModel):
    """Base for every section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class ProjectSettings(_Section):
    """Where things live and how the process computes."""

    seed: int = 7
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(2, ge=1)
    data_dir: Path = Path("data")
    reports_dir: Path = Path("reports")
    indexes_dir: Path = Path("indexes")


class ClickModelSettings(_Section):
    """The simulated search engine and shoppers that produce the demo click logs."""

    list_length: int = Field(20, ge=2, le=200)
    p_true_absent: float = Field(0.15, ge=0, le=1)
    p_click_identical: float = Field(0.85, ge=0, le=1)
    p_click_lookalike: float = Field(0.25, ge=0, le=1)
    p_click_same_category: float = Field(0.04, ge=0, le=1)
    p_click_noise: float = Field(0.01, ge=0, le=1)
    position_bias: float = Field(0.7, ge=0, description="examination prob = 1/(1+pos)**bias")
    p_switch: float = Field(0.35, ge=0, le=1, description="chance to keep browsing after a click")
    baseline_noise: float = Field(
        0.6, ge=0, description="std of noise added to the weak baseline ranker's scores"
    )
    dwell_ms_mean: float = Field(9000, gt=0)
    p_category_correct: float = Field(
        0.85, ge=0, le=1, description="chance the engine's predicted category is the true one"
    )
    p_category_selected: float = Field(
        0.1, ge=0, le=1, description="chance the shopper picks the (true) category by hand"
    )


class WorldSettings(_Section):
    """The procedural demo shop (``vsearch world``)."""

    items: int = Field(3000, ge=12, description="catalog listings")
    queries: int = Field(3000, ge=1)
    categories: int = Field(12, ge=2, le=12)
    image_size: int = Field(256, ge=64, le=1024)
    min_sellers: int = Field(1, ge=1)
    max_sellers: int = Field(5, ge=1)
    n_sellers: int = Field(150, ge=1)
    lookalike_fraction: float = Field(0.3, ge=0, le=1)
    distractor_prob: float = Field(0.5, ge=0, le=1)
    query_jpeg_quality: tuple[int, int] = (35, 85)
    studio_jpeg_quality: int = Field(92, ge=1, le=100)
    workers: int = Field(2, ge=1)
    chunk_size: int = Field(24, ge=1, description="images per render task of a worker process")
    query_popularity: float = Field(
        0.8, ge=0, description="Zipf exponent of which products shoppers photograph (0: uniform)"
    )
    start: str = "2026-10-01T00:00:00Z"
    days: int = Field(30, ge=1)
    clicks: ClickModelSettings = ClickModelSettings()

    @model_validator(mode="after")
    def _sellers_range(self) -> WorldSettings:
        if self.min_sellers > self.max_sellers:
            raise ValueError("world.min_sellers must be <= world.max_sellers")
        lo, hi = self.query_jpeg_quality
        if not 1 <= lo <= hi <= 100:
            raise ValueError("world.query_jpeg_quality must be [lo, hi] with 1 <= lo <= hi <= 100")
        return self


class ValidationSettings(_Section):
    """Great Expectations gates on each drop (docs/data_contracts.md#validation)."""

    ctr_min: float = Field(0.01, ge=0, le=1)
    ctr_max: float = Field(0.9, ge=0, le=1)
    min_rows_catalog: int = Field(10, ge=0)
    min_rows_queries: int = Field(10, ge=0)
    min_rows_impressions: int = Field(50, ge=0)
    volume_ratio_min: float = Field(
        0.1, ge=0, description="impressions vs median of previous drops, lower bound"
    )
    volume_ratio_max: float = Field(10.0, ge=0)
    image_max_bytes: int = Field(5_000_000, gt=0)
    image_max_pixels: int = Field(25_000_000, gt=0)
    image_min_side: int = Field(32, gt=0)
    clock_skew_s: int = Field(300, ge=0, description="tolerated future offset of timestamps")
    max_examples: int = Field(5, ge=1, description="failing example rows per expectation in report")
    data_docs: bool = True
    max_position: int = Field(1000, ge=1, description="impression positions must be < this")
    history_window: int = Field(10, ge=1, description="recent passing drops in the volume median")
    image_workers: int = Field(4, ge=1, description="threads checking image files")


class WindowSettings(_Section):
    """Which ingested drops the learning stages read, merged into one view (``data/window``).

    The click logs of the newest drops count; the catalog is the state after the newest drop
    (folded from the latest snapshot on, so listings that did not change stay listed).
    """

    drops: int = Field(
        0, ge=0, description="click logs of the newest N drops (0: no limit by count)"
    )
    days: float = Field(
        0,
        ge=0,
        description="click logs of drops created within D days of the newest (0: no limit)",
    )


class IngestSettings(_Section):
    """Where drops come from, where validated drops land and how DVC versions them."""

    incoming: str = Field(
        "data/incoming",
        description="folder (or fsspec URL: s3://bucket/prefix, ...) the nightly takes new "
        "drops from, oldest first; rejected drops go to <incoming>/rejected/",
    )
    incoming_scratch: Path = Field(
        Path("data/.incoming"),
        description="local copies of remote incoming drops while they are validated",
    )
    ledger_file: Path = Field(
        Path("data/drops.json"),
        description="record of every ingested drop (kind, DVC hash, validation stats)",
    )
    window_dir: Path = Field(
        Path("data/window"),
        description="the merged view of the window's drops the learning stages read",
    )
    window_truth_dir: Path = Field(
        Path("data/window.truth"),
        description="the window's merged demo truth (only a no-truth marker without)",
    )
    window: WindowSettings = WindowSettings()
    raw_dir: Path = Path("data/raw")
    quarantine_dir: Path = Path("data/quarantine")
    truth_dir: Path = Path("data/truth")
    current_file: Path = Field(
        Path("data/current.yaml"),
        description="names the drop the learning stages train on (dvc.yaml reads it)",
    )
    validation_reports_dir: Path = Path("reports/validation")
    dvc_remote: str = "local"
    dvc_push: bool = True


class MlflowServiceSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(5000, ge=1, le=65535)
    backend_store_uri: str | None = Field(
        None, description="default: sqlite under services.state_dir (absolute URI)"
    )
    artifact_root: str | None = Field(None, description="default: folder under state_dir")
    tracking_uri: str | None = Field(
        None, description="use an existing server instead of starting one"
    )


class PrefectServiceSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(4200, ge=1, le=65535)
    api_url: str | None = Field(None, description="use an existing server instead of starting one")


class ServicesSettings(_Section):
    """Embedded MLflow and Prefect servers (``vsearch services up``)."""

    state_dir: Path = Path(".services")
    start_timeout_s: float = Field(90, gt=0)
    mlflow: MlflowServiceSettings = MlflowServiceSettings()
    prefect: PrefectServiceSettings = PrefectServiceSettings()


class IndexSettings(_Section):
    """Binary index engine (defaults measured in docs/scaling.md).

    Each category is a partition. Small partitions are scanned exhaustively (``flat``); larger
    ones use ``ivf`` (float k-means lists scanned by Hamming distance, the benchmark's winner) or
    ``hnsw`` (a binary HNSW graph). The Hamming shortlist of ``rerank_depth`` items is re-scored
    with the float embeddings kept in a ``rerank_dtype`` store. ``vsearch index tune`` measures
    recall and writes the chosen depth/nprobe/ef into the release manifest, which then overrides
    the defaults here.
    """

    bits: int = Field(256, ge=8, multiple_of=8)
    flat_max: int = Field(20_000, ge=1, description="partitions up to this size use a flat index")
    large_kind: Literal["hnsw", "ivf"] = "ivf"
    hnsw_m: int = Field(16, ge=4)
    hnsw_ef_construction: int = Field(40, ge=8)
    hnsw_ef_search: int = Field(256, ge=1)
    ivf_list_size: int = Field(100, ge=8, description="mean items per inverted list (sets nlist)")
    ivf_nprobe: int = Field(8, ge=1)
    ivf_kmeans_iters: int = Field(10, ge=1)
    ivf_train_per_list: int = Field(64, ge=8, description="k-means sample per centroid")
    ivf_quantizer_flat_max: int = Field(
        4096, ge=1, description="lists up to this count use an exact centroid search, else HNSW"
    )
    ivf_quantizer_m: int = Field(16, ge=4)
    ivf_quantizer_ef: int = Field(48, ge=1, description="HNSW ef of the centroid search")
    rerank_depth: int = Field(300, ge=1)
    rerank_dtype: Literal["int8", "float16"] = "int8"
    search_kernel: Literal["compiled", "faiss"] = Field(
        "compiled",
        description="compiled: shortlist + re-rank in one compiled loop (vsearch.index.kernel; "
        "int8 store, ivf/flat partitions); faiss: per-partition faiss calls and a numpy re-rank",
    )
    rerank_clip_quantile: float = Field(0.9999, gt=0.5, le=1)
    target_recall: float = Field(0.95, gt=0, le=1)
    tune_sample: int = Field(1000, ge=10)
    tune_k: int = Field(10, ge=1)
    tune_depths: list[int] = Field(default_factory=lambda: [50, 100, 150, 200, 250, 300, 400, 600])
    tune_nprobes: list[int] = Field(default_factory=lambda: [4, 6, 8, 12, 16, 24, 32, 48])
    tune_efs: list[int] = Field(default_factory=lambda: [64, 128, 256, 400, 600])
    tune_confidences: list[float] = Field(
        default_factory=lambda: [0.5, 0.6, 0.7, 0.8, 0.9],
        description="routing thresholds tried when tuning queries carry category probabilities",
    )
    keep_releases: int = Field(3, ge=1)
    verify_checksums: bool = True
    uncertain_confidence: float = Field(
        0.9, ge=0, le=1, description="add runner-up categories until their mass reaches this"
    )
    max_extra_categories: int = Field(2, ge=0)
    extra_depth: float = Field(
        0.5, gt=0, le=1, description="shortlist depth in runner-up categories, x rerank_depth"
    )
    tune_extra_depths: list[float] = Field(default_factory=lambda: [0.5, 1.0])
    filter_exact_max: int = Field(
        10_000,
        ge=1,
        description="filtered search: a partition with at most this many allowed items is "
        "scanned exactly over them (flat partitions always are)",
    )
    filter_max_overfetch: float = Field(
        32.0,
        ge=1,
        description="filtered search in a large partition: cap of the effort multiplier "
        "1 / share allowed (nprobe, ef, shortlist)",
    )
    build_threads: int = Field(0, ge=0, description="faiss threads per build task; 0 = project")
    dask_address: str | None = Field(None, description="Dask scheduler; None = local cluster")
    dask_workers: int = Field(2, ge=1)


class MiningSettings(_Section):
    """Click mining: weighted (query, item) pairs, the co-click graph and its virtual IDs.

    Why these knobs: clicks are biased by position (shoppers look at the top more), first clicks
    are surer than switch clicks, and look-alike or stray clicks put spurious edges into the
    co-click graph. Each correction has a strength here instead of a constant in the code;
    ``src/vsearch/mining/`` documents the defaults and the measurements behind them.
    """

    propensity_method: Literal["ctr_ratio", "pbm_em"] = Field(
        "ctr_ratio", description="click rate per position vs position 0, or position-based EM"
    )
    propensity_max_position: int = Field(
        30, ge=1, description="positions beyond this share one (the last) propensity bucket"
    )
    propensity_floor: float = Field(
        0.2, gt=0, le=1, description="propensities are clipped here: max IPW weight = 1/floor"
    )
    em_iterations: int = Field(100, ge=1, description="pbm_em: maximum EM iterations")
    em_tolerance: float = Field(1e-6, gt=0, description="pbm_em: stop when propensities move less")
    first_click_weight: float = Field(1.0, ge=0, description="weight of a query's first click")
    switch_click_weight: float = Field(0.5, ge=0, description="weight of later (switch) clicks")
    negative_weight: float = Field(
        1.0, ge=0, description="skip-above negatives; multiplied by the examination propensity"
    )
    drop_false_negatives: bool = Field(
        True, description="drop negatives that share a virtual ID with a positive of the query"
    )
    coclick_scope: Literal["query", "session"] = Field(
        "query", description="items co-clicked within one query (default) or one session"
    )
    max_clicks_per_query: int = Field(
        8, ge=2, description="groups with more clicked items are left out of the graph"
    )
    edge_weight: Literal["count", "jaccard", "cosine"] = Field(
        "cosine", description="co-click count, or normalised by the items' click counts"
    )
    min_coclicks: int = Field(2, ge=1, description="edges with fewer co-clicks are dropped...")
    long_click_ms: int = Field(10_000, ge=0, description="dwell of a long click (0 = ignore dwell)")
    min_long_coclicks: int = Field(
        1, ge=1, description="...unless they have this many long (both dwell >= long_click_ms)"
    )
    min_edge_weight: float = Field(0.0, ge=0, description="edges lighter than this are dropped")
    min_relative_weight: float = Field(
        0.5, ge=0, le=1, description="drop edges lighter than this share of either end's best"
    )
    clustering: Literal["components", "louvain"] = Field(
        "components", description="connected components of the pruned graph, or Louvain"
    )
    louvain_resolution: float = Field(1.0, gt=0, description="louvain: higher = smaller groups")
    max_cluster_size: int = Field(
        8, ge=2, description="larger clusters are split at their weakest edges"
    )


BackboneName = Literal[
    "narrow",  # the from-scratch 4-stage CNN (vsearch.model.backbones)
    "resnet18",
    "resnet34",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "regnet_y_400mf",
    "efficientnet_b0",
]


class ModelSettings(_Section):
    """The network (docs/learning.md#the-model): backbone, input sizes, heads.

    Why these knobs: on a CPU the time budget is spent in image-steps, so the frame size (the full
    photo the box head sees), the crop size (the detected region the embedding sees) and the
    backbone width decide how much the model learns in 10 minutes
    (docs/measurements.md#backbone-throughput).
    """

    name: str = Field("vsearch-net", min_length=1, description="registered model name")
    backbone: BackboneName = "narrow"
    widths: tuple[int, int, int, int] = Field(
        (32, 64, 128, 256), description="channels of the narrow backbone's 4 stages"
    )
    blocks: int = Field(1, ge=1, le=4, description="residual blocks per narrow stage")
    stem_stride: Literal[2, 4] = Field(
        4, description="narrow backbone stem: 4 is ~4x cheaper on CPU, 2 keeps finer detail"
    )
    localizer_widths: tuple[int, int, int, int] | None = Field(
        (16, 32, 64, 128),
        description="None: the box head shares the backbone; else its own narrow trunk",
    )
    input_size: int = Field(192, ge=32, le=2048, description="px side photos are given at")
    frame_size: int = Field(128, ge=32, le=1024, description="px of the frame the box head sees")
    crop_size: int = Field(128, ge=32, le=1024, description="px of the region the embedding sees")
    crop_margin: float = Field(0.06, ge=0, le=0.5, description="box grown by this share per side")
    embedding_dim: int = Field(128, ge=8, le=4096)
    bits: int = Field(256, ge=8, multiple_of=8, description="hash bits; must equal index.bits")
    box_hidden: int = Field(64, ge=8, description="channels of the box head's conv")
    dropout: float = Field(0.1, ge=0, lt=1, description="before the category classifier")


class AugmentSettings(_Section):
    """Studio shot → real-shot synthesis on batched tensors (its boxes are free labels).

    Why ranges a little wider than the shots we expect: the model must not learn the simulator's
    exact limits; what it sees in training should cover what shoppers upload.
    """

    scale: tuple[float, float] = Field((0.3, 0.85), description="product side / frame side")
    rotate_std: float = Field(12.0, ge=0, le=90, description="degrees")
    rotate_max: float = Field(30.0, ge=0, le=180, description="degrees")
    perspective: float = Field(0.14, ge=0, lt=0.5, description="corner shift / product extent")
    flip_prob: float = Field(0.5, ge=0, le=1)
    studio_share: float = Field(
        0.5, ge=0, le=1, description="catalog slots shown as the clean studio shot, not a scene"
    )
    distractor_prob: float = Field(0.5, ge=0, le=1, description="another product beside it")
    distractor_scale: tuple[float, float] = Field((0.25, 0.65))
    distractor_overlap: float = Field(0.25, ge=0, le=1, description="share of its width")
    shadow: tuple[float, float] = Field((0.0, 0.45), description="contact shadow strength")
    brightness: tuple[float, float] = Field((0.6, 1.3))
    contrast: tuple[float, float] = Field((0.7, 1.2))
    gamma: tuple[float, float] = Field((0.8, 1.3))
    color_cast: float = Field(0.15, ge=0, lt=1, description="per-channel gain 1 +- this")
    light_gradient: float = Field(0.3, ge=0, lt=1)
    blur_prob: float = Field(0.65, ge=0, le=1)
    blur_sigma: tuple[float, float] = Field((0.2, 1.2), description="px at input_size")
    noise_std: tuple[float, float] = Field((0.0, 0.04), description="0..1 pixel scale")
    jpeg_prob: float = Field(0.8, ge=0, le=1)
    jpeg_quality: tuple[int, int] = Field((30, 90))
    jpeg_groups: int = Field(4, ge=1, description="quality drawn per group of the batch")
    box_jitter: float = Field(0.08, ge=0, lt=0.5, description="crop box shift/scale in training")
    matte_threshold: float = Field(
        0.1, gt=0, lt=1, description="colour distance from the studio backdrop that is product"
    )
    background_side: int = Field(384, ge=64, description="px the background photos are kept at")
    procedural_share: float = Field(
        0.0, ge=0, le=1, description="scene backgrounds drawn procedurally, not real photos"
    )
    clutter_share: float = Field(
        0.25, ge=0, le=1, description="of the procedural ones: mosaics of other products' pieces"
    )
    box_loose_prob: float = Field(
        0.0, ge=0, le=1, description="true-box crops cut at a loose box instead of a jittered one"
    )
    box_loose_grow: float = Field(
        0.5, ge=0, le=2, description="a loose box grows each side by up to this share of its side"
    )
    studio_full_frame_prob: float = Field(
        0.0, ge=0, le=1, description="studio crops cut at the whole frame (a user's loose box)"
    )

    @model_validator(mode="after")
    def _ranges(self) -> AugmentSettings:
        for name in (
            "scale",
            "distractor_scale",
            "shadow",
            "brightness",
            "contrast",
            "gamma",
            "blur_sigma",
            "noise_std",
        ):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"train.augment.{name} must be [lo, hi] with 0 <= lo <= hi")
        lo, hi = self.jpeg_quality
        if not 1 <= lo <= hi <= 100:
            raise ValueError("train.augment.jpeg_quality must be [lo, hi] within 1..100")
        return self


class LossSettings(_Section):
    """Weights and knobs of the joint loss (category + box + metric + quantisation)."""

    category: float = Field(4.0, ge=0)
    box_l1: float = Field(2.0, ge=0)
    box_giou: float = Field(1.0, ge=0)
    heatmap: float = Field(1.0, ge=0)
    proxy: float = Field(1.0, ge=0, description="NormalizedSoftmax over virtual-ID classes")
    pair: float = Field(1.0, ge=0, description="MultiSimilarity over mined in-batch pairs")
    hash_pair: float = Field(0.5, ge=0, description="MultiSimilarity on the relaxed hash codes")
    quantization: float = Field(0.1, ge=0)
    proxy_temperature: float = Field(0.05, gt=0)
    ms_alpha: float = Field(2.0, gt=0)
    ms_beta: float = Field(50.0, gt=0)
    ms_base: float = Field(0.5)
    miner_epsilon: float = Field(0.1, ge=0)
    heatmap_sigma: float = Field(0.1, gt=0, description="Gaussian radius / box side")
    proxy_lr_mult: float = Field(10.0, gt=0, description="proxies learn faster than the net")


class SplitSettings(_Section):
    """The held-out split (vsearch.split): queries never mined or trained on, for evaluation.

    ``time``: the newest ``eval_share`` of queries by ``ts`` (ties by ``query_id``), the future
    the model must serve (works on any shop's click logs); ``hash``: a hash of the query id.
    """

    method: Literal["time", "hash"] = Field(
        "time", description="time: the newest queries by ts; hash: a hash of query_id"
    )
    eval_share: float = Field(
        0.2, ge=0, lt=1, description="share of queries held out for evaluation"
    )
    salt: str = Field("holdout", min_length=1, description="hash split: a new salt, a new split")
    hash_buckets: int = Field(10_000, ge=100, description="resolution of the hash split")


class SignalSettings(_Section):
    """Which click-mining signals reach the losses (each can be switched off for an ablation)."""

    virtual_ids: bool = Field(
        True, description="classes are virtual IDs; false: every listing is its own class"
    )
    propensity: bool = Field(
        False, description="query samples weigh 1 / examination propensity of their click position"
    )
    click_type: bool = Field(
        False,
        description="query samples weigh mining's first/switch click weight; false: all clicks 1",
    )
    skip_above: bool = Field(
        False, description="skip-above negatives join batches as forced hard negatives"
    )


class TrainSettings(_Section):
    """The training loop (``vsearch train``): batches, optimiser, budget, checkpoints."""

    epochs: int = Field(30, ge=1)
    time_budget_s: float | None = Field(
        510,
        gt=0,
        description="wall time for loading + training; export (~1 min) follows; None = no limit",
    )
    baseline_time_budget_s: float | None = Field(
        None,
        ge=0,
        description="budget of the oracle/category-only comparison runs; None = time_budget_s",
    )
    steps_per_epoch: int | None = Field(
        None, ge=1, description="None: one pass over the catalog images per epoch"
    )
    min_steps: int = Field(
        600,
        ge=0,
        description="a small catalog still gets this many planned steps (longer epochs); the "
        "time budget still ends the run; ignored when steps_per_epoch is set",
    )
    batch_size: int = Field(64, ge=4)
    per_class: int = Field(2, ge=1, description="images per virtual ID in a batch")
    query_share: float = Field(0.25, ge=0, lt=1, description="share of a batch from query photos")
    negative_share: float = Field(
        0.5, ge=0, le=1, description="query slots that bring one of their skip-above negatives"
    )
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(5e-4, ge=0)
    warmup_steps: int = Field(100, ge=0)
    val_share: float = Field(
        0.1, ge=0, lt=1, description="click-labelled queries kept out for per-epoch recall"
    )
    val_k: int = Field(10, ge=1)
    grad_clip: float = Field(5.0, gt=0)
    precision: Literal["fp32", "bf16"] = Field(
        "bf16", description="trunks in bfloat16 while training (~2x faster on AVX512-BF16 CPUs)"
    )
    predicted_box_share: float = Field(
        0.3, ge=0, le=1, description="scene crops taken at the predicted box, not the true one"
    )
    predicted_box_grad_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="of the predicted-box crops: those whose crop loss reaches the box",
    )
    query_box_grad_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="query crops (at their predicted box) whose crop loss reaches the box",
    )
    crop_box_grad_scale: float = Field(
        0.05, ge=0, description="scale of the crop loss's gradient where it reaches a box"
    )
    decode_workers: int = Field(2, ge=1, description="threads decoding images into the cache")
    checkpoint_every: int = Field(1, ge=1, description="epochs between checkpoints")
    augment: AugmentSettings = AugmentSettings()
    loss: LossSettings = LossSettings()
    signals: SignalSettings = SignalSettings()
    warm_start: bool = Field(
        True, description="fine-tune the registry's champion when its architecture matches"
    )
    warm_lr_mult: float = Field(
        1.0, gt=0, description="lr multiplier of a warm-started run (fine-tuning)"
    )
    warm_warmup_steps: int | None = Field(
        None, ge=0, description="warm-up steps of a warm-started run; None = warmup_steps"
    )


class ServingSettings(_Section):
    """The BentoML service (``vsearch serve``): what it serves, its limits, batching, admin.

    Why limits here and not only in the pipeline: the service refuses an oversized request
    before reading it all (``max_request_bytes``), and bounds ``k`` and batch sizes so one
    caller cannot make a search arbitrarily expensive.
    """

    host: str = "127.0.0.1"
    port: int = Field(3000, ge=1, le=65535)
    start_timeout_s: float = Field(60, gt=0, description="wait for /readyz when started by us")
    stop_grace_s: float = Field(
        20,
        gt=0,
        description="on SIGTERM/SIGINT or `services down`: wait this long for the service to "
        "drain and exit, then SIGKILL its process group",
    )
    model_source: Literal["auto", "registry", "path"] = Field(
        "auto",
        description="registry: MLflow alias; path: model_dir; auto: registry if MLflow is set",
    )
    model_alias: str = Field("champion", min_length=1, description="registry alias to serve")
    model_dir: Path = Field(Path("runs/train/model"), description="model folder (path source)")
    model_cache_dir: Path = Field(
        Path(".services/serving/models"), description="registry downloads, one folder a version"
    )
    admin_dir: Path = Field(
        Path("data/admin"),
        description="the project's change set (admin upserts with photos, deletes): "
        "changes.sqlite, folded into every new release",
    )
    admin_token_env: str = Field(
        "VSEARCH_ADMIN_TOKEN", min_length=1, description="env var holding the admin bearer token"
    )
    max_request_bytes: int = Field(
        12_000_000,
        gt=0,
        description="bodies above this are refused (413) unread; > search.max_image_bytes",
    )
    max_batch_request_bytes: int = Field(
        48_000_000, gt=0, description="the same for /search_batch (base64 photos in JSON)"
    )
    max_batch_items: int = Field(16, ge=1, description="photos one /search_batch request may hold")
    batch_max_size: int = Field(
        32, ge=1, description="adaptive batching: most photos merged into one model call"
    )
    batch_max_latency_ms: int = Field(
        5000, ge=1, description="adaptive batching: a request queued longer is refused (503)"
    )
    search_threads: int = Field(
        2, ge=1, description="searches run at once per worker (more wait; CPU cores bound it)"
    )
    search_batch_max: int = Field(
        32,
        ge=1,
        description="most concurrent /search photos merged into one model call (1: no merging)",
    )
    torch_threads: int = Field(
        1, ge=1, description="torch intra-op threads of the service (per running search call)"
    )
    torch_interop_threads: int = Field(
        1, ge=0, description="torch inter-op threads of the service (0: torch's default)"
    )
    freeze_heap: bool = Field(
        True,
        description="after each pipeline load, freeze the objects alive (gc.freeze) so full "
        "garbage collections skip them (a full one otherwise stalls every search for ~0.25 s)",
    )
    trace_requests: bool = Field(
        False,
        description="OpenTelemetry spans per request (BentoML's middleware); turn on where "
        "BentoML's tracing exporter is configured: without one they go nowhere and cost "
        "~0.25 ms a request",
    )
    request_timeout_s: float = Field(30, gt=0, description="BentoML traffic timeout per request")
    samples: int = Field(8, ge=0, description="held-out demo query photos offered by /samples")
    max_field_chars: int = Field(
        256, ge=1, description="longest text form field (item_id, title, category, ...)"
    )
    admin_rate_per_s: float = Field(
        5.0,
        gt=0,
        description="admin requests per second one caller (its valid token, else its address) "
        "may sustain; more are refused 429 with Retry-After",
    )
    admin_rate_burst: int = Field(
        20, ge=1, description="admin requests one caller may make at once after being idle"
    )


class RobustnessSettings(_Section):
    """The robustness report (:mod:`vsearch.evaluation.robustness`, truth family, model only).

    Why bounded: each photo is encoded ``1 + len(box_growth) + 2 * len(reshot_scales)`` times;
    a few dozen photos per question keep the nightly evaluation cheap.
    """

    photos: int = Field(
        50, ge=0, description="held-out queries (loose boxes) and listings (re-shot); 0: skip"
    )
    box_growth: list[float] = Field(
        default_factory=lambda: [0.1, 0.25, 0.5],
        description="the true box grown by these shares of its width/height on each side",
    )
    reshot_scales: list[float] = Field(
        default_factory=lambda: [0.25, 0.375, 0.5],
        description="re-shot listings: the product's longer side as a share of the frame side",
    )

    @model_validator(mode="after")
    def _ranges(self) -> RobustnessSettings:
        if any(g < 0 for g in self.box_growth):
            raise ValueError("evaluation.robustness.box_growth: shares must be >= 0")
        if any(not 0 < s <= 1 for s in self.reshot_scales):
            raise ValueError("evaluation.robustness.reshot_scales: shares must be in (0, 1]")
        return self


def _default_evaluation_targets() -> dict[str, float]:
    return {
        "identical_recall@10": 0.75,
        "category_acc_fused": 0.85,
        "category_fused_beats_both": 1.0,
        "box_iou_mean": 0.70,
        "binary_retention@10": 0.97,
        "oracle_ratio": 0.9,
        "robust_box_grow0.25_minus_true_box": -0.05,
        "robust_reshot_studio_recall@10": 0.6,
    }


class EvaluationSettings(_Section):
    """The evaluation (``vsearch evaluate``) on the held-out demo queries.

    Why targets live here but are not enforced: evaluation measures and reports met / not met;
    the promotion gate decides. Target keys are metric names of the report
    (``identical_recall@10``, ``map@r``, ...) or ``oracle_ratio`` (model vs oracle recall at
    ``headline_k``); a misspelt key is an error, not a silently ignored target.
    """

    recall_ks: list[int] = Field(
        default_factory=lambda: [1, 5, 10], description="K of the identical_recall@K metrics"
    )
    headline_k: int = Field(
        10, ge=1, description="K of binary_retention@K, the true-box recall and the ratios"
    )
    curve_max_k: int = Field(50, ge=1, description="recall@K curve for K = 1..this")
    batch_size: int = Field(64, ge=1, description="photos per forward pass")
    calibration_queries: int = Field(
        300, ge=10, description="click-labelled validation queries calibrating the fusion weight"
    )
    fusion_grid: list[float] = Field(
        default_factory=lambda: [round(0.1 * i, 1) for i in range(11)],
        description="fusion weights tried by the calibration",
    )
    vote_temperature_grid: list[float] = Field(
        default_factory=lambda: [0.02, 0.05, 0.1, 0.2],
        description="vote temperatures the calibration tries with each weight (empty: search's)",
    )
    decode_workers: int = Field(2, ge=1, description="threads decoding photos")
    histogram_bins: int = Field(
        8, ge=2, le=16, description="colour_histogram baseline: bins per RGB channel (bins^3 dims)"
    )
    examples: int = Field(6, ge=0, description="held-out queries drawn in the example grid")
    example_results: int = Field(5, ge=1, description="results shown per example query")
    example_thumb_px: int = Field(160, ge=32, description="side of each picture in the grid")
    latency_queries: int = Field(
        50, ge=0, description="single-query searches timed for latency_p50/p95_ms (0: skip)"
    )
    latency_warmup: int = Field(3, ge=0, description="untimed searches before the timed ones")
    iou_buckets: list[float] = Field(
        default_factory=lambda: [0.0, 0.3, 0.5, 0.7, 1.0],
        description="edges of the detected-box IoU buckets (share and recall per bucket)",
    )
    robustness: RobustnessSettings = Field(default_factory=RobustnessSettings)
    targets: dict[str, float] = Field(default_factory=_default_evaluation_targets)

    @model_validator(mode="after")
    def _consistent(self) -> EvaluationSettings:
        if not self.recall_ks or min(self.recall_ks) < 1:
            raise ValueError("evaluation.recall_ks must be a non-empty list of K >= 1")
        if max(self.recall_ks) > self.curve_max_k or self.headline_k > self.curve_max_k:
            raise ValueError("evaluation.recall_ks and headline_k must be <= curve_max_k")
        if any(t <= 0 for t in self.vote_temperature_grid):
            raise ValueError("evaluation.vote_temperature_grid: temperatures must be > 0")
        edges = self.iou_buckets
        if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError("evaluation.iou_buckets: at least two increasing edges")
        known = (
            {f"identical_recall@{k}" for k in self.recall_ks}
            | {
                "map@r",
                "category_acc_model",
                "category_acc_search",
                "category_acc_fused",
                "category_fused_beats_both",
                "box_iou_mean",
                f"binary_retention@{self.headline_k}",
                f"identical_recall@{self.headline_k}_true_box",
                "oracle_ratio",
            }
            | {f"click_recall@{k}" for k in self.recall_ks}
            | {f"robust_reshot_{m}_recall@{self.headline_k}" for m in ("studio", "cutout")}
            | {f"robust_box_grow{g:g}_minus_true_box" for g in self.robustness.box_growth}
            | {
                "click_mrr",
                "click_category_acc_model",
                "click_category_acc_fused",
            }
        )
        unknown = sorted(set(self.targets) - known)
        if unknown:
            raise ValueError(
                f"evaluation.targets: unknown metric(s) {unknown}; known: {sorted(known)}"
            )
        return self


class SearchSettings(_Section):
    """The online search pipeline (``vsearch.search``), shared by the service, evaluation and CLI.

    Why these knobs: the paper fuses the classifier with a vote of the visually nearest catalog
    items (``fusion_weight``, ``vote_k``); the final ranking lets listing quality and sales move
    a result only a little (similarity dominates: a listing can pass a more similar one only by
    ``weight_quality + weight_sales``), and near-duplicate listings of one product from several
    sellers collapse into one result (``group_similarity``). Upload limits guard the service.
    """

    max_image_bytes: int = Field(10_000_000, gt=0, description="uploads above this are refused")
    max_image_pixels: int = Field(
        40_000_000, gt=0, description="header pixel count refused above this, before decoding"
    )
    image_formats: list[str] = Field(
        default_factory=lambda: ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"],
        min_length=1,
        description="PIL formats accepted from uploads (photos only: no EPS/PDF decoders)",
    )
    default_k: int = Field(10, ge=1, description="results when the caller does not say")
    max_k: int = Field(100, ge=1, description="largest k a caller may ask for")
    vote_k: int = Field(10, ge=1, description="nearest catalog items that vote for the category")
    vote_temperature: float | None = Field(
        0.05, gt=0, description="softmax temperature of the vote weights; None = similarity"
    )
    vote_depth: int = Field(
        50, ge=1, description="Hamming shortlist per partition of the all-category vote search"
    )
    fusion_weight: float = Field(
        0.7, ge=0, le=1, description="fused = w * classifier + (1 - w) * neighbour vote"
    )
    report_categories: int = Field(5, ge=1, description="fused probabilities shown per query")
    weight_quality: float = Field(0.03, ge=0, le=0.5, description="score bonus x quality (0..1)")
    weight_sales: float = Field(
        0.02, ge=0, le=0.5, description="score bonus x log-sales signal (0..1)"
    )
    sales_saturation: int = Field(
        1000, ge=1, description="sales where the log-sales signal reaches 1 (log1p scale)"
    )
    product_groups_dir: Path | None = Field(
        Path("runs/mining"),
        description="mining outputs whose virtual IDs group one product's listings: copied "
        "into each new release (the service reads the release's copy); `vsearch search`",
    )
    group_similarity: float = Field(
        0.995,
        ge=-1,
        le=1,
        description="cosine at which listings are near-exact duplicates (also grouped)",
    )
    candidate_factor: int = Field(
        4, ge=1, description="fetch k x this candidates so grouping still fills k results"
    )
    encode_batch: int = Field(64, ge=1, description="photos per forward pass")
    proposals: int = Field(
        5, ge=0, le=64, description="candidate boxes returned per photo (0: only the best box)"
    )
    proposal_iou: float = Field(
        0.5, gt=0, le=1, description="NMS: a candidate overlapping a better one above this goes"
    )
    proposal_min_score: float = Field(
        0.1, ge=0, le=1, description="candidates below this objectness are dropped (not the best)"
    )
    second_look: float | None = Field(
        0.1,
        ge=0,
        le=1,
        description="also search the box detected inside the searched box grown by this share "
        "per side; a listing keeps its better similarity (None: off)",
    )

    @model_validator(mode="after")
    def _k_range(self) -> SearchSettings:
        if self.default_k > self.max_k:
            raise ValueError("search.default_k must be <= search.max_k")
        return self


def _default_gate_floors() -> dict[str, float]:
    return {"identical_recall@10": 0.30, "category_acc_fused": 0.50, "latency_p95_ms": 500.0}


def _default_gate_tolerances() -> dict[str, float]:
    return {"identical_recall@10": 0.03, "category_acc_fused": 0.02, "latency_p95_ms": 0.5}


def _default_click_floors() -> dict[str, float]:
    return {"click_recall@10": 0.25, "click_category_acc_fused": 0.50, "latency_p95_ms": 500.0}


def _default_click_tolerances() -> dict[str, float]:
    return {"click_recall@10": 0.03, "click_category_acc_fused": 0.02, "latency_p95_ms": 0.5}


class GatesSettings(_Section):
    """The promotion gate: absolute floors plus no regression beyond a tolerance vs the champion.

    Why both: a floor alone lets quality drift down release by release; a regression check alone
    lets a poor first model through. Keys are evaluation metric names (``identical_recall@10``);
    a metric in ``lower_is_better`` (latency) has its floor read as a ceiling, and a metric in
    ``relative`` has its tolerance read as a share of the champion's value (timings on a shared
    machine vary by a fraction, not by a fixed number of ms).

    Two families: ``floors``/``tolerances`` gate the ground-truth metrics (demo worlds);
    ``click_floors``/``click_tolerances`` gate the click metrics, what every shop's data
    has. ``family: auto`` picks the truth family when the evaluation had truth, else clicks.
    """

    family: Literal["auto", "truth", "click"] = Field(
        "auto", description="which gates apply: auto = truth when evaluated with truth, else click"
    )
    floors: dict[str, float] = Field(
        default_factory=_default_gate_floors,
        description="truth family: challenger must reach these (lower_is_better: stay below)",
    )
    tolerances: dict[str, float] = Field(
        default_factory=_default_gate_tolerances,
        description="truth family: allowed regression vs the champion (metric's unit or relative)",
    )
    click_floors: dict[str, float] = Field(
        default_factory=_default_click_floors,
        description="click family: challenger must reach these (lower_is_better: stay below)",
    )
    click_tolerances: dict[str, float] = Field(
        default_factory=_default_click_tolerances,
        description="click family: allowed regression vs the champion",
    )
    lower_is_better: list[str] = Field(default_factory=lambda: ["latency_p95_ms"])
    relative: list[str] = Field(default_factory=lambda: ["latency_p95_ms"])

    @model_validator(mode="after")
    def _consistent(self) -> GatesSettings:
        gated = (
            set(self.floors)
            | set(self.tolerances)
            | set(self.click_floors)
            | set(self.click_tolerances)
        )
        stray = sorted((set(self.lower_is_better) | set(self.relative)) - gated)
        if stray:
            raise ValueError(f"registry.gates: {stray} named but neither a floor nor a tolerance")
        tolerances = {**self.tolerances, **self.click_tolerances}
        negative = sorted(k for k, v in tolerances.items() if v < 0)
        if negative:
            raise ValueError(f"registry.gates.tolerances must be >= 0 ({negative})")
        return self

    def family_for(self, has_truth: bool) -> str:
        """The gate family that applies to an evaluation with (or without) ground truth."""
        if self.family == "auto":
            return "truth" if has_truth else "click"
        return self.family

    def thresholds(self, family: str) -> tuple[dict[str, float], dict[str, float]]:
        """``(floors, tolerances)`` of a family (``truth`` or ``click``)."""
        if family == "click":
            return self.click_floors, self.click_tolerances
        return self.floors, self.tolerances


class RegistrySettings(_Section):
    """MLflow tracking and model registry (training runs, ``vsearch promote``, promotion gate)."""

    track: bool = Field(
        True, description="vsearch train/evaluate log to MLflow (False: offline, nothing logged)"
    )
    experiment: str = Field("vsearch", min_length=1, description="MLflow experiment of runs")
    model_name: str | None = Field(
        None, description="registered model name; None = model.name (one name everywhere)"
    )
    connect_timeout_s: float = Field(
        5.0, gt=0, description="health check of the tracking server before a run starts"
    )
    await_registration_s: int = Field(
        120, ge=0, description="wait for a new model version to become READY"
    )
    http_retries: int = Field(
        4,
        ge=0,
        description="MLflow client retries of a request on I/O failures (connection errors, "
        "429, 5xx), with exponential backoff; then the command fails naming the server",
    )
    http_backoff_factor: int = Field(
        1, ge=0, description="MLflow client backoff: factor * 2**(retry-1) s between retries"
    )
    challenger_alias: str = Field(
        "challenger", min_length=1, description="alias training points at each new version"
    )
    champion_alias: str = Field(
        "champion", min_length=1, description="alias only the promotion moves (what ships)"
    )
    gates: GatesSettings = GatesSettings()


class PromotionSettings(_Section):
    """The promotion flow (``flows/promotion.py``): the candidate service's load run, the Bento."""

    load_requests: int = Field(40, ge=5, description="timed /search requests of the load run")
    load_concurrency: int = Field(1, ge=1, description="client threads of the load run")
    load_warmup: int = Field(2, ge=0, description="untimed requests per thread first")
    load_photos: int = Field(20, ge=1, description="held-out query photos the load run sends")
    build_bento: bool = Field(True, description="`bentoml build` when a release ships")
    io_retries: int = Field(
        2,
        ge=0,
        description="retries of the ship's I/O steps (Bento build, service reload), each on "
        "its own; CURRENT and the champion alias move once, never retried",
    )
    io_retry_delay_s: float = Field(5, ge=0, description="wait before each of those retries")


class ScheduleSettings(_Section):
    """The nightly and baselines deployments (``flows/deploy.py``, ``vsearch deploy``/``demo``)."""

    cron: str = Field("0 2 * * *", min_length=9, description="when the nightly flow runs (UTC)")
    baselines_cron: str = Field(
        "0 4 * * 0",
        min_length=9,
        description="when the baselines flow runs (UTC; weekly, after that night's run)",
    )
    register_timeout_s: float = Field(
        60, gt=0, description="wait for the deployment process to register it"
    )


class Settings(_Section):
    """All of params.yaml."""

    project: ProjectSettings = ProjectSettings()
    world: WorldSettings = WorldSettings()
    validation: ValidationSettings = ValidationSettings()
    ingest: IngestSettings = IngestSettings()
    split: SplitSettings = SplitSettings()
    services: ServicesSettings = ServicesSettings()
    index: IndexSettings = IndexSettings()
    mining: MiningSettings = MiningSettings()
    model: ModelSettings = ModelSettings()
    train: TrainSettings = TrainSettings()
    serving: ServingSettings = ServingSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    search: SearchSettings = SearchSettings()
    registry: RegistrySettings = RegistrySettings()
    schedule: ScheduleSettings = ScheduleSettings()
    promotion: PromotionSettings = PromotionSettings()

    @model_validator(mode="after")
    def _registry_model_name(self) -> Settings:
        if self.registry.model_name is None:  # one name for model.json, registry and manifests
            self.registry.model_name = self.model.name
        return self

    @model_validator(mode="after")
    def _model_fits_index(self) -> Settings:
        if self.model.bits != self.index.bits:
            raise ValueError(
                f"model.bits ({self.model.bits}) must equal index.bits ({self.index.bits}): "
                "the index stores the hash head's codes"
            )
        return self


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' reader of ``VSEARCH__SECTION__KEY`` variables (nesting by ``__``).

    Values stay text here: they are parsed as YAML when folded in (:func:`apply_env_overrides`),
    so a list, a mapping or ``~`` is written as in ``params.yaml``, and a mapping given in the
    environment replaces the file's mapping instead of merging into it.
    """

    def decode_complex_value(self, field_name: str, field: Any, value: Any) -> Any:
        return value


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The ``VSEARCH__...`` variables of ``environ`` as a nested mapping of text values.

    Raises:
        SettingsError: a variable names a section params.yaml does not have (a typo would
            otherwise be ignored silently).
    """
    source = _EnvSource(
        Settings, case_sensitive=False, env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTING
    )
    source.env_vars = parse_env_vars(environ, False, False, None)
    prefix = ENV_PREFIX.lower()
    unknown = sorted(
        name.upper()
        for name in source.env_vars
        if name.startswith(prefix)
        and name[len(prefix) :].split(ENV_NESTING)[0] not in Settings.model_fields
    )
    if unknown:
        raise SettingsError(
            f"environment override for an unknown section: {', '.join(unknown)} "
            f"(sections: {', '.join(Settings.model_fields)})"
        )
    return source()


def _leaves(tree: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[list[str], Any]]:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _leaves(value, (*path, key))
        else:
            yield [*path, key], value


def _set_path(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise SettingsError(f"override {'.'.join(keys)}: {key} is not a section")
    node[keys[-1]] = yaml.safe_load(value) if isinstance(value, str) else value


def apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str] | None = None) -> None:
    """Fold ``VSEARCH__SECTION__KEY=value`` variables into ``raw`` (values parsed as YAML)."""
    env = os.environ if environ is None else environ
    for keys, value in _leaves(env_overrides(env)):
        _set_path(raw, keys, value)


def with_overrides(settings: Settings, pairs: list[str]) -> Settings:
    """A validated copy of ``settings`` with dotted ``section.key=value`` overrides (values
    parsed as YAML), as the benches' ``--set`` options take them.

    Raises:
        SettingsError: a pair without ``=``, an unknown key or a bad value (named).
    """
    raw = settings.model_dump()
    for kv in pairs:
        key, sep, value = kv.partition("=")
        if not sep:
            raise SettingsError(f"override {kv!r}: expected section.key=value")
        _set_path(raw, key.split("."), value)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise SettingsError(_format_errors(exc, "overrides " + " ".join(pairs))) from None


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid settings in {source}:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        got = err.get("input")
        hint = " (unknown key: check spelling)" if err["type"] == "extra_forbidden" else ""
        lines.append(f"  {where}: {err['msg']}{hint}; got {got!r}")
    return "\n".join(lines)


def settings_from_dict(
    raw: dict[str, Any], source: str = "<dict>", environ: dict[str, str] | None = None
) -> Settings:
    """Validate a params mapping (after env overrides) into :class:`Settings`."""
    data = dict(raw or {})
    apply_env_overrides(data, environ)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(_format_errors(exc, source)) from None


def load_settings(
    path: str | Path = DEFAULT_PARAMS, environ: dict[str, str] | None = None
) -> Settings:
    """Read ``params.yaml`` once. Raises :class:`SettingsError` naming the bad key or file."""
    p = Path(path)
    if not p.is_file():
        raise SettingsError(f"params file not found: {p.resolve()} (run from the project root)")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{p}: top level must be a mapping of sections")
    return settings_from_dict(raw, source=str(p), environ=environ)
