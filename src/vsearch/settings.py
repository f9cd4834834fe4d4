"""Typed settings: ``params.yaml`` read once into validated pydantic models.

Why: every tunable lives in ``params.yaml`` (DVC tracks its keys per stage), and a typo in a key
or a string where a number belongs must fail loudly at start-up, naming the key, instead of
silently falling back to a default deep inside a stage. Entry points (CLI, flows, service) call
:func:`load_settings` once and pass the object down; nothing reads the file at import time.

Environment overrides use ``VSEARCH__<SECTION>__<KEY>=value`` (nested keys joined by ``__``),
so a deployment can point MLflow at Postgres or a build at a Dask cluster without editing files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_PREFIX = "VSEARCH__"
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
    """Great Expectations gates on each drop (DESIGN.md section 4)."""

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


class IngestSettings(_Section):
    """Where validated drops land and how DVC versions them."""

    raw_dir: Path = Path("data/raw")
    quarantine_dir: Path = Path("data/quarantine")
    truth_dir: Path = Path("data/truth")
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
    """Binary index engine (DESIGN.md section 6)."""

    bits: int = Field(256, ge=8, multiple_of=8)
    flat_max: int = Field(20_000, ge=1, description="partitions up to this size use a flat index")
    large_kind: Literal["hnsw", "ivf"] = "hnsw"
    hnsw_m: int = Field(32, ge=4)
    hnsw_ef_construction: int = Field(40, ge=8)
    hnsw_ef_search: int = Field(64, ge=1)
    ivf_nlist: int = Field(1024, ge=1)
    ivf_nprobe: int = Field(16, ge=1)
    rerank_depth: int = Field(100, ge=1)
    target_recall: float = Field(0.95, gt=0, le=1)
    tune_sample: int = Field(1000, ge=10)
    keep_releases: int = Field(3, ge=1)
    uncertain_confidence: float = Field(0.6, ge=0, le=1)
    max_extra_categories: int = Field(2, ge=0)
    dask_address: str | None = Field(None, description="Dask scheduler; None = local cluster")
    dask_workers: int = Field(2, ge=1)


class Settings(_Section):
    """All of params.yaml."""

    project: ProjectSettings = ProjectSettings()
    world: WorldSettings = WorldSettings()
    validation: ValidationSettings = ValidationSettings()
    ingest: IngestSettings = IngestSettings()
    services: ServicesSettings = ServicesSettings()
    index: IndexSettings = IndexSettings()


def _set_path(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise SettingsError(f"override {'.'.join(keys)}: {key} is not a section")
    node[keys[-1]] = yaml.safe_load(value) if isinstance(value, str) else value


def apply_env_overrides(raw: dict[str, Any], environ: dict[str, str] | None = None) -> None:
    """Fold ``VSEARCH__SECTION__KEY=value`` variables into ``raw`` (values parsed as YAML)."""
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if name.startswith(ENV_PREFIX):
            keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
            if keys:
                _set_path(raw, keys, value)


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
