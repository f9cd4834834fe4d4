"""MLflow tracking of a training run: params, data and code versions, curves, model, version.

Why one tracker for every training run (DESIGN.md section 5): a model version in the registry
must say exactly what made it: the settings (params), the code (git sha, dirty flag), the data
(the DVC hash of each input), where its labels came from (clicks, the oracle's truth or only
categories) and which Prefect flow run trained it. :class:`TrainingTracker` records all of that
on one MLflow run, logs per-epoch metrics with ``step=epoch``, the loss curves, the model in
MLflow's pytorch flavor (signature and a batch-2 input example) *and* the raw model folder
(``weights.pt`` + ``model.json``) that :func:`vsearch.model.export.load_model` rebuilds, then
registers a version and points the ``challenger`` alias at it.

MLflow facts this module is written around (mlflow 3.17, see DESIGN.md section 11):

- ``mlflow.pytorch.log_model`` serialises with ``torch.export`` ("pt2") by default and marks
  the signature's ``-1`` dimensions dynamic; a batch-1 example would freeze the batch, so the
  example has batch 2. The exported module returns a tuple, which the pyfunc wrapper cannot
  serve, so the serving-input check is skipped; use ``mlflow.pytorch.load_model``.
- Metric and param names may not contain ``@``: ``identical_recall@10`` is logged as
  ``identical_recall_at_10`` (:func:`metric_key`); ``metrics.json`` itself is logged as an
  artifact, so the exact names survive for the release gate.
- Ending a run prints "View run ..." on stdout; that would corrupt ``--json`` output, so it is
  sent to stderr.
- The logged model goes into the run's experiment only when the run is the active (fluent) run,
  so the tracker starts its run with ``mlflow.start_run`` and must be used from one thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from vsearch.errors import BadInput
from vsearch.settings import Settings

log = logging.getLogger(__name__)

RUN_INFO_FILE = "mlflow_run.json"
CHALLENGER = "challenger"
CHAMPION = "champion"
MODEL_ARTIFACT = "model"  # MLflow pytorch flavor (pt2) inside the logged model
RAW_MODEL_ARTIFACT = "vsearch_model"  # weights.pt + model.json, what load_model reads
PLOTS_ARTIFACT = "plots"
EVAL_ARTIFACT = "evaluation"
CURVES_FILE = "loss_curves.png"
LABEL_SOURCES = ("clicks", "oracle", "category")
FLOW_RUN_ENVS = ("VSEARCH_FLOW_RUN_ID", "PREFECT__FLOW_RUN_ID")
# Tag names (the MLflow UI shows mlflow.source.git.commit as the run's source version).
TAG_GIT_SHA = "mlflow.source.git.commit"
TAG_GIT_DIRTY = "vsearch.git_dirty"
TAG_LABEL_SOURCE = "vsearch.label_source"
TAG_FLOW_RUN = "vsearch.prefect_flow_run_id"
TAG_FLOW_RUN_URL = "vsearch.prefect_flow_run_url"
TAG_DVC = "vsearch.dvc"  # vsearch.dvc.<input> = hash, .source / .path beside it
TAG_FINGERPRINT = "fingerprint"  # model version tags
TAG_RUN_ID = "run_id"
# Per-epoch row keys that are coordinates, not metrics.
_ROW_AXES = ("epoch",)
_BAD_NAME_CHARS = re.compile(r"[^/\w.\- :]")
_MLFLOW_BATCH = 100  # params/tags per log_batch request (MLflow's limit)
_METRIC_BATCH = 1000


class TrackingUnavailable(BadInput):
    """The tracking server did not answer; the message says how to start it."""


# --- small pure helpers -------------------------------------------------------------------------


def metric_key(name: str) -> str:
    """An MLflow-legal metric/param name: ``@`` becomes ``_at_``, other odd characters ``_``."""
    return _BAD_NAME_CHARS.sub("_", name.replace("@", "_at_"))


def flatten(tree: Mapping[str, Any], prefix: str = "", sep: str = "/") -> dict[str, Any]:
    """Nested mappings to ``{"a/b/c": leaf}`` (lists and other leaves kept as they are)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name, sep))
        else:
            out[name] = value
    return out


def numeric_metrics(tree: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric (and boolean, as 0/1) leaves of a nested mapping under MLflow-legal names."""
    out: dict[str, float] = {}
    for name, value in flatten(tree, prefix).items():
        # bool is an int: logged as 0/1; NaN (x != x) is not a metric
        if isinstance(value, int | float) and value == value:
            out[metric_key(name)] = float(value)
    return out


def settings_params(settings: Settings) -> dict[str, str]:
    """What a training run depends on, flattened: ``model.*``, ``train.*`` and the seed."""
    tree = {
        "model": settings.model.model_dump(mode="json"),
        "train": settings.train.model_dump(mode="json"),
        "project": {"seed": settings.project.seed},
    }
    return {
        metric_key(k): v if isinstance(v, str) else json.dumps(v)
        for k, v in flatten(tree, sep=".").items()
    }


# --- edges: tracking server, git, DVC, Prefect -------------------------------------------------


def resolve_tracking_uri(settings: Settings, explicit: str | None = None) -> str:
    """Explicit URI, else ``MLFLOW_TRACKING_URI`` (set by ``apply_client_env``), else settings."""
    from vsearch.local.env import mlflow_tracking_uri

    return (
        explicit or os.environ.get("MLFLOW_TRACKING_URI") or mlflow_tracking_uri(settings.services)
    )


def require_server(uri: str, timeout_s: float, hint: str = "") -> None:
    """Fail fast, with what to do, when an HTTP tracking server does not answer ``/health``.

    ``hint`` is appended to the message (e.g. how to train without tracking).
    """
    if not uri.startswith(("http://", "https://")):
        return  # a local store (file:, sqlite:) needs no server
    try:
        ok = httpx.get(f"{uri.rstrip('/')}/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        ok = False
    if not ok:
        raise TrackingUnavailable(
            f"MLflow tracking server {uri} is not reachable: start it with "
            "`vsearch services up` (or point services.mlflow.tracking_uri at a running server)"
            + hint
        )


def git_state(repo_root: Path) -> tuple[str, bool]:
    """``(sha, dirty)`` of the code; ``("unknown", True)`` outside a git checkout.

    Dirty means tracked files differ from the commit (untracked data folders do not count).
    """
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo_root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return sha, bool(status.strip())


def _lock_hash(rel: str, repo_root: Path) -> str | None:
    """The md5 ``dvc.lock`` records for the stage output at ``rel`` (any stage)."""
    import yaml

    lock = repo_root / "dvc.lock"
    if not lock.is_file():
        return None
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages") or {}
    for stage in stages.values():
        for out in stage.get("outs") or []:
            if out.get("path", "").rstrip("/") == rel and out.get("md5"):
                return str(out["md5"])
    return None


def _computed_hash(path: Path) -> str:
    """sha256 over relative paths and bytes: the fallback for inputs DVC does not track."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() if path.is_dir() else f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def input_hash(path: Path, repo_root: Path) -> tuple[str, str]:
    """``(hash, source)`` of a data input, the way DVC versions it.

    ``source`` is ``dvc`` (its own ``.dvc`` file: an ingested drop), ``dvc.lock`` (a stage
    output: mining, a model folder) or ``computed`` (not versioned by DVC: our own sha256, so the
    run still pins the exact bytes).
    """
    from vsearch.data import dvc

    with contextlib.suppress(dvc.DvcError):
        return dvc.content_hash(path), "dvc"
    try:
        rel = path.resolve().relative_to(repo_root.resolve()).as_posix()
    except ValueError:
        rel = None
    if rel is not None and (md5 := _lock_hash(rel, repo_root)):
        return md5, "dvc.lock"
    return _computed_hash(path), "computed"


def current_flow_run_id(explicit: str | None = None) -> str | None:
    """The Prefect flow run this process works for: explicit, environment, or runtime context.

    The training flow passes ``VSEARCH_FLOW_RUN_ID`` to the stage command it runs; code running
    inside a flow (Prefect already imported) gets it from ``prefect.runtime``.
    """
    if explicit:
        return explicit
    for name in FLOW_RUN_ENVS:
        if os.environ.get(name):
            return os.environ[name]
    if "prefect" in sys.modules:  # never import Prefect (slow) just to learn we are not in a flow
        from prefect.runtime import flow_run

        run_id = flow_run.id
        return str(run_id) if run_id else None
    return None


def _flow_run_url(run_id: str) -> str | None:
    api = os.environ.get("PREFECT_API_URL")
    return f"{api.removesuffix('/api')}/runs/flow-run/{run_id}" if api else None


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """MLflow prints "View run ..." on stdout when a run ends: keep stdout for ``--json``."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


# --- plots -------------------------------------------------------------------------------------


def plot_history(history: list[Mapping[str, Any]], out: Path) -> Path | None:
    """Small multiples of every per-epoch series (losses first, ``total`` leading); PNG.

    Returns ``None`` when there is nothing to draw (no epoch finished).
    """
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt

    keys = sorted(
        {k for row in history for k, v in row.items() if isinstance(v, int | float)}
        - set(_ROW_AXES),
        key=lambda k: (k != "total", k),
    )
    if not keys:
        return None
    cols = min(4, len(keys))
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        pts = [(row.get("epoch", i), row[key]) for i, row in enumerate(history) if key in row]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


# --- the tracker -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrackedModel:
    """Where a training run landed in MLflow (also written to ``mlflow_run.json``)."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    model_name: str
    version: str | None  # None: logged but not registered (baseline runs)
    model_uri: str  # the logged pytorch-flavor model (models:/m-...)
    fingerprint: str
    label_source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_run_info(run_folder: Path) -> dict[str, Any] | None:
    """What :meth:`TrainingTracker.log_model` wrote into a training run folder (or ``None``)."""
    path = run_folder / RUN_INFO_FILE
    return json.loads(path.read_text()) if path.is_file() else None


class TrainingTracker:
    """One MLflow run for one training run (a context manager; use it from one thread).

    Example::

        with TrainingTracker(settings, label_source="clicks",
                             inputs={"drop": drop, "mining": mining}, run_folder=out) as tr:
            result = train(settings, data, out)
            for row in result.epochs:
                tr.log_epoch(row, int(row["epoch"]))
            tracked = tr.log_model(result.model_dir, result.metrics)

    The run ends ``FINISHED``, or ``FAILED`` when the block raises.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        label_source: str,
        inputs: Mapping[str, Path] | None = None,
        run_folder: Path | None = None,
        tracking_uri: str | None = None,
        flow_run_id: str | None = None,
        repo_root: Path | None = None,
        run_name: str | None = None,
    ) -> None:
        """Prepare (nothing is contacted until ``__enter__``).

        Args:
            settings: all settings (``registry``, ``model``, ``train``, ``project.seed``).
            label_source: ``clicks``, ``oracle`` or ``category``; only ``clicks`` models are
                registered by default (the others are comparison runs, never shipped).
            inputs: ``name -> path`` of each data input (drop, mining folder), hashed as DVC
                versions them.
            run_folder: the training run folder (gets ``mlflow_run.json``); default: the model
                folder's parent.
            tracking_uri: default :func:`resolve_tracking_uri`.
            flow_run_id: the Prefect flow run; default :func:`current_flow_run_id`.
            repo_root: git/DVC root for code and data versions; default the working directory.
            run_name: MLflow run name; default ``train-<label_source>``.
        """
        if label_source not in LABEL_SOURCES:
            raise BadInput(f"label_source {label_source!r}: expected one of {LABEL_SOURCES}")
        self.settings = settings
        self.label_source = label_source
        self.inputs = dict(inputs or {})
        self.run_folder = run_folder
        self.tracking_uri = resolve_tracking_uri(settings, tracking_uri)
        self.flow_run_id = current_flow_run_id(flow_run_id)
        self.repo_root = (repo_root or Path.cwd()).resolve()
        self.run_name = run_name or f"train-{label_source}"
        self.model_name = settings.registry.model_name or settings.model.name
        self.history: list[dict[str, Any]] = []
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self._client: Any = None

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> TrainingTracker:
        import mlflow

        require_server(
            self.tracking_uri,
            self.settings.registry.connect_timeout_s,
            hint="; or train with --no-mlflow and track the run later with `vsearch register`",
        )
        mlflow.set_tracking_uri(self.tracking_uri)  # the pytorch flavor logs via the fluent API
        self._client = mlflow.MlflowClient(self.tracking_uri)
        self.experiment_id = _experiment_id(self._client, self.settings.registry.experiment)
        run = mlflow.start_run(
            experiment_id=self.experiment_id,
            run_name=self.run_name,
            tags=self._tags(),
            nested=mlflow.active_run() is not None,
        )
        self.run_id = run.info.run_id
        try:
            self._log_params(settings_params(self.settings))
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        log.info("MLflow run %s in experiment %s", self.run_id, self.settings.registry.experiment)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import mlflow

        if exc_type is None:
            status = "FINISHED"
        else:
            status = "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"
        active = mlflow.active_run()
        with _stdout_to_stderr():
            if active is not None and active.info.run_id == self.run_id:
                mlflow.end_run(status)
            elif self.run_id is not None:
                self._client.set_terminated(self.run_id, status)

    @property
    def client(self) -> Any:
        if self._client is None or self.run_id is None:
            raise RuntimeError("use TrainingTracker as a context manager (`with ... as tracker`)")
        return self._client

    def _tags(self) -> dict[str, str]:
        sha, dirty = git_state(self.repo_root)
        tags = {
            TAG_GIT_SHA: sha,
            TAG_GIT_DIRTY: str(dirty).lower(),
            TAG_LABEL_SOURCE: self.label_source,
        }
        for name, path in self.inputs.items():
            digest, source = input_hash(Path(path), self.repo_root)
            tags[f"{TAG_DVC}.{name}"] = digest
            tags[f"{TAG_DVC}.{name}.source"] = source
            tags[f"{TAG_DVC}.{name}.path"] = str(path)
        if self.flow_run_id:
            tags[TAG_FLOW_RUN] = self.flow_run_id
            if url := _flow_run_url(self.flow_run_id):
                tags[TAG_FLOW_RUN_URL] = url
        return tags

    def _log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), _MLFLOW_BATCH):
            self.client.log_batch(self.run_id, params=items[i : i + _MLFLOW_BATCH])

    def _log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step) for k, v in metrics.items()]
        for i in range(0, len(items), _METRIC_BATCH):
            self.client.log_batch(self.run_id, metrics=items[i : i + _METRIC_BATCH])

    # -- what the training loop reports -------------------------------------------------------
    def log_epoch(self, row: Mapping[str, Any], epoch: int) -> None:
        """One epoch's means (losses, images/s, box IoU, ...) as ``train/<key>`` at step=epoch."""
        self.history.append({**row, "epoch": epoch})
        metrics = numeric_metrics({k: v for k, v in row.items() if k not in _ROW_AXES}, "train")
        self._log_metrics(metrics, step=epoch)

    def log_history(self, history: list[Mapping[str, Any]]) -> None:
        """Every row of a finished run's ``history.json`` via :meth:`log_epoch`."""
        for i, row in enumerate(history):
            self.log_epoch(row, int(row.get("epoch", i)))

    def log_model(
        self,
        model_dir: Path,
        metrics: Mapping[str, Any] | None = None,
        *,
        register: bool | None = None,
    ) -> TrackedModel:
        """Log the model (pytorch flavor + raw folder), curves and final metrics; register it.

        Args:
            model_dir: a folder written by :func:`vsearch.model.export.save_model`.
            metrics: the run's final metrics (``TrainResult.metrics``): numbers go in as
                ``run/<key>``, strings as tags.
            register: create a model version with the ``challenger`` alias; default only for
                click-trained models (oracle and category-only runs are baselines).

        Returns:
            The run id, the version (``None`` when not registered) and the model's fingerprint;
            also written to ``<run_folder>/mlflow_run.json``.
        """
        import mlflow
        import torch

        from vsearch.model.export import ServingModule, load_model, mlflow_signature

        register = self.label_source == "clicks" if register is None else register
        try:
            net, meta = load_model(model_dir)
        except ValueError as exc:
            raise BadInput(f"cannot log {model_dir}: {exc}") from None
        fp = str(meta["fingerprint"])
        self._log_final(metrics or {})
        signature, example = mlflow_signature(net)
        info = mlflow.pytorch.log_model(
            ServingModule(net),
            name=MODEL_ARTIFACT,
            signature=signature,
            input_example=example,  # batch 2: torch.export keeps the batch dimension dynamic
            serialization_format="pt2",
            pip_requirements=_pip_requirements(torch.__version__),
            run_id=self.run_id,
            validate_serving_input=False,  # tuple outputs: pyfunc cannot serve them
        )
        version = None
        if register:
            version = self._register(info.model_uri, fp)
        self._log_raw_model(model_dir, version)
        history = self.history or _read_history(model_dir.parent)
        with tempfile.TemporaryDirectory() as tmp:
            if png := plot_history(history, Path(tmp) / CURVES_FILE):
                self.client.log_artifact(self.run_id, str(png), PLOTS_ARTIFACT)
        if version is not None:  # last: the alias announces a complete version
            self.client.set_registered_model_alias(self.model_name, CHALLENGER, version)
            log.info("registered %s version %s as %s", self.model_name, version, CHALLENGER)
        tracked = TrackedModel(
            run_id=str(self.run_id),
            experiment_id=str(self.experiment_id),
            tracking_uri=self.tracking_uri,
            model_name=self.model_name,
            version=version,
            model_uri=info.model_uri,
            fingerprint=fp,
            label_source=self.label_source,
        )
        folder = self.run_folder or model_dir.parent
        folder.mkdir(parents=True, exist_ok=True)
        tmp_path = folder / f".{RUN_INFO_FILE}.tmp"
        tmp_path.write_text(json.dumps(tracked.to_dict(), indent=2))
        tmp_path.replace(folder / RUN_INFO_FILE)
        return tracked

    def _log_final(self, metrics: Mapping[str, Any]) -> None:
        self._log_metrics(numeric_metrics(metrics, "run"))
        for key, value in metrics.items():
            if isinstance(value, str):
                self.client.set_tag(self.run_id, f"vsearch.{metric_key(key)}", value)

    def _register(self, model_uri: str, fp: str) -> str:
        import mlflow

        sha, _ = git_state(self.repo_root)
        with _stdout_to_stderr():
            mv = mlflow.register_model(
                model_uri,
                self.model_name,
                await_registration_for=self.settings.registry.await_registration_s,
                tags={
                    TAG_FINGERPRINT: fp,
                    TAG_RUN_ID: str(self.run_id),
                    "label_source": self.label_source,
                    "git_sha": sha,
                },
            )
        return str(mv.version)

    def _log_raw_model(self, model_dir: Path, version: str | None) -> None:
        """The folder ``load_model`` reads, with the registry's name and version in model.json."""
        from vsearch.model.export import META_FILE

        with tempfile.TemporaryDirectory() as tmp:
            dst = Path(tmp) / RAW_MODEL_ARTIFACT
            shutil.copytree(model_dir, dst)
            meta = json.loads((dst / META_FILE).read_text())
            meta.update(name=self.model_name, run_id=self.run_id)
            if version is not None:
                meta["version"] = version
            (dst / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
            self.client.log_artifacts(self.run_id, str(dst), RAW_MODEL_ARTIFACT)


def _experiment_id(client: Any, name: str) -> str:
    """Get or create the experiment (a concurrent creator may win the race: read it back)."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(client.create_experiment(name))
    except MlflowException:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def _pip_requirements(torch_version: str) -> list[str]:
    """Pinned requirements of the exported model (skips MLflow's slow inference subprocess)."""
    from importlib.metadata import version

    torch_pin = torch_version.split("+", 1)[0]
    return [
        f"torch=={torch_pin}",
        f"torchvision=={version('torchvision').split('+', 1)[0]}",  # roi_align op in the graph
        f"numpy=={version('numpy')}",
        f"mlflow=={version('mlflow')}",
    ]


def _read_history(run_folder: Path) -> list[dict[str, Any]]:
    from vsearch.training.loop import HISTORY_FILE

    path = run_folder / HISTORY_FILE
    return list(json.loads(path.read_text()).get("epochs") or []) if path.is_file() else []


# --- after training ----------------------------------------------------------------------------


def register_run(
    settings: Settings,
    run_folder: Path,
    *,
    inputs: Mapping[str, Path] | None = None,
    label_source: str | None = None,
    tracking_uri: str | None = None,
    repo_root: Path | None = None,
    register: bool | None = None,
) -> TrackedModel:
    """Track a finished training run folder (``history.json`` + ``model/``) in one call.

    Why: training may run where the tracking server is unreachable (``--no-mlflow``), and a
    DVC stage may be split from logging; the folder has everything the tracker needs. The label
    source defaults to the one ``history.json`` recorded.
    """
    from vsearch.training.loop import HISTORY_FILE, MODEL_DIR

    hist_path, model_dir = run_folder / HISTORY_FILE, run_folder / MODEL_DIR
    if not hist_path.is_file() or not model_dir.is_dir():
        raise BadInput(
            f"{run_folder} is not a finished training run (needs {HISTORY_FILE} and "
            f"{MODEL_DIR}/); run `vsearch train --out {run_folder}` first"
        )
    hist = json.loads(hist_path.read_text())
    metrics = hist.get("metrics") or {}
    source = label_source or str(metrics.get("label_source") or "clicks")
    with TrainingTracker(
        settings,
        label_source=source,
        inputs=inputs,
        run_folder=run_folder,
        tracking_uri=tracking_uri,
        repo_root=repo_root,
    ) as tracker:
        tracker.log_history(hist.get("epochs") or [])
        return tracker.log_model(model_dir, metrics, register=register)


def log_evaluation(
    run_id: str,
    metrics_path: Path,
    plots_dir: Path | None = None,
    *,
    settings: Settings,
    tracking_uri: str | None = None,
) -> dict[str, float]:
    """Log an evaluation report into the training run it evaluated.

    Numeric leaves of ``metrics.json`` become ``eval/<path>`` metrics (``@`` → ``_at_``, e.g.
    ``eval/model/identical_recall_at_10``); the file itself is logged as
    ``evaluation/metrics.json`` (the exact names the release gate reads back) and every PNG
    under ``plots_dir`` under ``evaluation/plots``.

    Returns:
        The metrics logged (MLflow names).

    Raises:
        BadInput: the file is not a JSON object, or the run does not exist on the server.
    """
    import mlflow
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException

    tracking_uri = resolve_tracking_uri(settings, tracking_uri)
    require_server(tracking_uri, settings.registry.connect_timeout_s)
    try:
        report = json.loads(metrics_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"{metrics_path}: not a readable JSON report ({exc})") from None
    if not isinstance(report, dict):
        raise BadInput(f"{metrics_path}: expected a JSON object of metrics")
    client = mlflow.MlflowClient(tracking_uri)
    try:
        client.get_run(run_id)
    except MlflowException:
        raise BadInput(
            f"MLflow run {run_id} not found on {tracking_uri}; was the training run tracked "
            f"on this server? (see {RUN_INFO_FILE} in the training run folder)"
        ) from None
    metrics = numeric_metrics(report, "eval")
    now = int(time.time() * 1000)
    items = [Metric(k, v, now, 0) for k, v in metrics.items()]
    for i in range(0, len(items), _METRIC_BATCH):
        client.log_batch(run_id, metrics=items[i : i + _METRIC_BATCH])
    with tempfile.TemporaryDirectory() as tmp:  # a fixed name, whatever the report was called
        copy = Path(tmp) / "metrics.json"
        shutil.copyfile(metrics_path, copy)
        client.log_artifact(run_id, str(copy), EVAL_ARTIFACT)
    if plots_dir is not None and plots_dir.is_dir():
        for png in sorted(plots_dir.rglob("*.png")):
            sub = png.parent.relative_to(plots_dir).as_posix()
            dest = f"{EVAL_ARTIFACT}/plots" + ("" if sub == "." else f"/{sub}")
            client.log_artifact(run_id, str(png), dest)
    return metrics
