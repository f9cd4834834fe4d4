"""MLflow tracking of a training run: params, lineage, per-epoch metrics, model, version.

Why one tracker for every training run (docs/learning.md#mlflow-logging): a model version in the
registry must say exactly what made it: the settings (params), the code (git sha, dirty flag), the
data (the DVC hash of each input), where its labels came from (clicks, the oracle's truth or only
categories) and which Prefect flow run trained it (gathered by :mod:`vsearch.tracking.lineage`).
:class:`TrainingTracker` records all of that on one MLflow run, logs per-epoch metrics with
``step=epoch``, the model in MLflow's pytorch flavor (signature and a batch-2 input example) *and*
the raw model folder (``weights.pt`` + ``model.json``) that :func:`vsearch.model.export.load_model`
rebuilds, then registers a version and points the challenger alias (``registry.challenger_alias``)
at it. The loss-curve plots are drawn and logged by the evaluation stage, not here.

MLflow facts this module is written around (mlflow 3.17, see
docs/operations.md#tool-behaviour-we-rely-on):

- ``mlflow.pytorch.log_model`` serialises with ``torch.export`` ("pt2") by default and marks
  the signature's ``-1`` dimensions dynamic; a batch-1 example would freeze the batch, so the
  example has batch 2. The exported module returns a tuple, which the pyfunc wrapper cannot
  serve, so the serving-input check is skipped; use ``mlflow.pytorch.load_model``.
- Metric and param names may not contain ``@``: ``identical_recall@10`` is logged as
  ``identical_recall_at_10`` (:func:`metric_key`); ``metrics.json`` itself is logged as an
  artifact, so the exact names survive for the promotion gate.
- Ending a run prints "View run ..." on stdout; that would corrupt ``--json`` output, so it is
  sent to stderr.
- The logged model goes into the run's experiment only when the run is the active (fluent) run,
  so the tracker starts its run with ``mlflow.start_run`` and must be used from one thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
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
from vsearch.fsio import atomic_write_json
from vsearch.settings import Settings
from vsearch.tracking.lineage import current_flow_run_id, git_state, lineage_tags
from vsearch.trained import RUN_INFO_FILE

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"  # MLflow pytorch flavor (pt2) inside the logged model
RAW_MODEL_ARTIFACT = "vsearch_model"  # weights.pt + model.json, what load_model reads
EVAL_ARTIFACT = "evaluation"
LABEL_SOURCES = ("clicks", "oracle", "category")
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


# --- the tracking server ---------------------------------------------------------------------


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


def apply_http_retries(settings: Settings) -> None:
    """Bound MLflow's own HTTP retries (``registry.http_retries``, ``http_backoff_factor``).

    Why: MLflow's client retries a request on I/O failures only (connection errors, 429 and
    5xx answers; a 4xx is final) with exponential backoff, by default 7 times (about four
    minutes). The project's values make a dead server a clear failure in seconds. They are
    environment variables because MLflow reads them per request.
    """
    r = settings.registry
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(r.http_retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = str(r.http_backoff_factor)


def unreachable(uri: str, timeout_s: float) -> bool:
    """The tracking server does not answer ``/health`` (a local store always answers)."""
    try:
        require_server(uri, timeout_s)
    except TrackingUnavailable:
        return True
    return False


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """MLflow prints "View run ..." on stdout when a run ends: keep stdout for ``--json``."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


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
        apply_http_retries(self.settings)
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
        from mlflow.exceptions import MlflowException

        active = mlflow.active_run()
        try:
            with _stdout_to_stderr():
                if active is not None and active.info.run_id == self.run_id:
                    mlflow.end_run(status)
                elif self.run_id is not None:
                    self._client.set_terminated(self.run_id, status)
        except MlflowException as end_exc:
            if exc_type is None:
                raise
            # The server is gone too: the error that ended the run is the one to report.
            log.warning("could not mark MLflow run %s %s: %s", self.run_id, status, end_exc)

    @property
    def client(self) -> Any:
        if self._client is None or self.run_id is None:
            raise RuntimeError("use TrainingTracker as a context manager (`with ... as tracker`)")
        return self._client

    def _tags(self) -> dict[str, str]:
        return lineage_tags(
            self.repo_root,
            label_source=self.label_source,
            inputs=self.inputs,
            flow_run_id=self.flow_run_id,
        )

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
        """Log the model (pytorch flavor + raw folder) and final metrics; register it.

        Args:
            model_dir: a folder written by :func:`vsearch.model.export.save_model`.
            metrics: the run's final metrics (``TrainResult.metrics``): numbers go in as
                ``run/<key>``, strings as tags.
            register: create a model version with the challenger alias; default only for
                click-trained models (oracle and category-only runs are baselines).

        Returns:
            The run id, the version (``None`` when not registered) and the model's fingerprint;
            also written to ``<run_folder>/mlflow_run.json``.
        """
        from vsearch.model.export import load_model

        register = self.label_source == "clicks" if register is None else register
        try:
            net, meta = load_model(model_dir)
        except ValueError as exc:
            raise BadInput(f"cannot log {model_dir}: {exc}") from None
        with self._server_gone_is_said(model_dir):
            return self._log_model(net, meta, model_dir, metrics, register)

    @contextlib.contextmanager
    def _server_gone_is_said(self, model_dir: Path) -> Iterator[None]:
        """An MLflow failure with the server gone becomes :class:`TrackingUnavailable` naming
        it and what to do; a failure with the server up (a real error) stays as it is."""
        from mlflow.exceptions import MlflowException

        try:
            yield
        except MlflowException as exc:
            if not unreachable(self.tracking_uri, self.settings.registry.connect_timeout_s):
                raise
            raise TrackingUnavailable(
                f"MLflow tracking server {self.tracking_uri} stopped answering while logging "
                f"run {self.run_id} (after {self.settings.registry.http_retries} retries with "
                f"backoff): the model is safe in {model_dir}, and an alias only ever moves to a "
                "completely logged version. Start the "
                "server (`vsearch services up`) and track the run again with "
                "`vsearch register RUN`"
            ) from exc

    def _log_model(
        self,
        net: Any,
        meta: Mapping[str, Any],
        model_dir: Path,
        metrics: Mapping[str, Any] | None,
        register: bool,
    ) -> TrackedModel:
        import mlflow
        import torch

        from vsearch.model.export import ServingModule, mlflow_signature

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
        if version is not None:  # last: the alias announces a complete version
            alias = self.settings.registry.challenger_alias
            self.client.set_registered_model_alias(self.model_name, alias, version)
            log.info("registered %s version %s as %s", self.model_name, version, alias)
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
        atomic_write_json(folder / RUN_INFO_FILE, tracked.to_dict(), sort_keys=False)
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


# --- after training ----------------------------------------------------------------------------


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
    ``evaluation/metrics.json`` (the exact names the promotion gate reads back) and every PNG
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
