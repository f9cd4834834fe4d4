"""The promotion's steps: candidate index, service load run, champion re-score, gates, ship.

Why these steps, in this order (docs/operations.md#the-promotion-gate): a challenger ships only if
its *service* is good, so the gate reads the evaluation's quality figures and a latency measured by
a short load run of the real service (HTTP, decode, model, search) serving the candidate index,
compared like with like: the champion is re-scored on the candidate's eval set
(:func:`champion_reference`; one it cannot read or score fails the gate); and
nothing visible changes before every gate passed: the candidate release is built without touching
``CURRENT``, measured by a private service process on its own port, and only a pass moves
``CURRENT``, sets the ``champion`` alias, builds the Bento and reloads the running service. A
failure leaves champion, ``CURRENT`` and the serving index as they were.

``flows/promotion.py`` wires these as Prefect tasks; each is a plain function for tests and CLI.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from vsearch.errors import BadInput, GateFailed
from vsearch.index.release import current_version, list_versions, set_current
from vsearch.index.release_data import ReleaseData
from vsearch.registry.gates import GateReport, evaluate_promotion_gates
from vsearch.settings import Settings
from vsearch.tracking.tracker import read_run_info
from vsearch.trained import EMBEDDINGS_DIR, MODEL_DIR, RUN_INFO_FILE

log = logging.getLogger(__name__)

LATENCY_METRIC = "latency_p95_ms"
TAG_SERVICE_P95 = "service_p95_ms"  # model version tag: the p95 its promotion gate measured


@dataclass
class Candidate:
    """A trained model waiting at the gate.

    Attributes:
        run_folder: the training run (``model/``, ``embeddings/``, ``mlflow_run.json``).
        fingerprint: the model's weights hash.
        version: its registered MLflow model version (``challenger``).
        metrics: the evaluation's ``metrics.json`` (checked to be about this model).
    """

    run_folder: Path
    fingerprint: str
    version: str
    metrics: dict[str, Any]

    @property
    def model_dir(self) -> Path:
        return self.run_folder / MODEL_DIR


def load_candidate(run_folder: Path, metrics_path: Path) -> Candidate:
    """The challenger trained in ``run_folder`` and its evaluation.

    Raises:
        BadInput: the run was not tracked/registered, or the metrics are about another model
            (an evaluation older than the training would gate the wrong model).
    """
    from vsearch.model.export import META_FILE

    info = read_run_info(run_folder)
    meta_path = run_folder / MODEL_DIR / META_FILE
    if info is None or not meta_path.is_file():
        raise BadInput(
            f"{run_folder}: no registered model ({RUN_INFO_FILE} + {MODEL_DIR}/); "
            "train with MLflow tracking on (registry.track) first"
        )
    if not info.get("version"):
        raise BadInput(f"{run_folder}: the run was tracked but not registered as a version")
    if not metrics_path.is_file():
        raise BadInput(f"{metrics_path}: no evaluation; run `vsearch evaluate` first")
    metrics = json.loads(metrics_path.read_text())
    fp = str(json.loads(meta_path.read_text())["fingerprint"])
    if str(metrics.get("model_fingerprint")) != fp:
        raise BadInput(
            f"{metrics_path} evaluates model {str(metrics.get('model_fingerprint'))[:12]}, "
            f"the challenger is {fp[:12]}: re-run the evaluation"
        )
    return Candidate(run_folder, fp, str(info["version"]), metrics)


def dvc_hash(drop: Path) -> str | None:
    """The md5 DVC versions a drop folder under (``None``: not tracked, a drop from outside)."""
    from vsearch.data import dvc

    try:
        return dvc.content_hash(drop)
    except dvc.DvcError:
        return None


def release_data(
    settings: Settings, root: Path, drops: list[Path], mlflow: dict[str, Any] | None = None
) -> ReleaseData:
    """:func:`~vsearch.index.release_data.release_data_for` with the product groups of
    ``search.product_groups_dir`` and DVC's hashes of the drops."""
    from vsearch.index.release_data import release_data_for

    mining = settings.search.product_groups_dir
    return release_data_for(drops, _abs(root, mining) if mining else None, mlflow, dvc_hash)


def _same_data(m: Any, data: ReleaseData, changes_seq: int) -> bool:
    """A published release was built from the same drops, groups and admin changes."""
    lineage = m.lineage or {}
    return (
        m.data is not None
        and lineage.get("drops") is not None
        and [(d["drop_id"], d["dvc_hash"]) for d in lineage["drops"]]
        == [(d["drop_id"], d["dvc_hash"]) for d in data.lineage["drops"]]
        and (lineage.get("groups") or {}).get("sha256") == data.lineage["groups"]["sha256"]
        and int((lineage.get("changes") or {}).get("seq", 0)) == changes_seq
    )


def release_calibration(measured: dict[str, Any]) -> dict[str, Any] | None:
    """What the evaluation calibrated for serving (the release records it, the service applies
    it): the fusion weight and the vote temperature chosen with it; ``None`` without a
    calibrated weight (a model without a classifier serves the params)."""
    weight, temperature = measured.get("fusion_weight"), measured.get("vote_temperature")
    if weight is None:
        return None
    calibration: dict[str, Any] = {"fusion_weight": weight}
    if temperature is not None:
        calibration["vote_temperature"] = temperature
    return calibration


def candidate_release(
    settings: Settings, root: Path, cand: Candidate, drops: list[Path]
) -> tuple[str, bool]:
    """An index release of the candidate's catalog embeddings, built without activating it.

    The release carries the catalog of ``drops`` (the window the model was trained on), the
    mined product groups and the lineage, and folds in the project's change set (admin
    upserts re-encoded from their photos by the candidate model, deletes kept deleted).

    Returns:
        ``(version, reused)``: a published release already built by this model from the same
        data (drops, groups, admin changes) is reused (the nightly run on unchanged data
        rebuilds nothing).
    """
    from vsearch.index.builder import build_release
    from vsearch.index.changeset import ChangeSet
    from vsearch.index.embeddings import EmbeddingSet
    from vsearch.index.manifest import Manifest
    from vsearch.index.release_data import mlflow_lineage

    indexes = _abs(root, settings.project.indexes_dir)
    calibration = release_calibration(cand.metrics.get("model") or {})
    data = release_data(settings, root, drops, mlflow_lineage(cand.run_folder, cand.version))
    changes = ChangeSet.in_folder(_abs(root, settings.serving.admin_dir))
    seq = changes.last_seq()
    for v in reversed(list_versions(indexes)):
        m = Manifest.read(indexes / v)
        if (
            m.model.fingerprint == cand.fingerprint
            and m.calibration == calibration
            and _same_data(m, data, seq)
        ):
            log.info("release %s was already built by model %s: reusing", v, cand.fingerprint[:12])
            return v, True
    emb = EmbeddingSet.load(cand.run_folder / EMBEDDINGS_DIR, mmap=True)
    latest = changes.latest(upto=seq)
    if latest:
        from vsearch.search.changes import fold_changes
        from vsearch.search.encoder import NetEncoder

        encoder = NetEncoder.load(
            cand.model_dir, settings.project.device, batch_size=settings.search.encode_batch
        )
        emb, data = fold_changes(emb, data, latest, encoder, settings.search, encoder.input_size)
    ups = sum(c.op == "upsert" for c in latest)
    data.lineage["changes"] = {"seq": seq, "upserts": ups, "deletes": len(latest) - ups}
    manifest = build_release(
        emb,
        settings.index,
        indexes,
        activate=False,
        threads=settings.index.build_threads or settings.project.threads,
        extra={
            "source": str((cand.run_folder / EMBEDDINGS_DIR).resolve()),
            "calibration": calibration,  # fusion weight + vote temperature, for serving
        },
        data=data,
    )
    return manifest.version, False


def already_shipped(settings: Settings, root: Path, cand: Candidate, release: str) -> bool:
    """The candidate is the champion and its release is ``CURRENT``: nothing new to ship."""
    from vsearch.registry.registry import ModelRegistry

    reg = ModelRegistry.from_settings(settings)
    champion = reg.find(reg.champion_alias)
    indexes = _abs(root, settings.project.indexes_dir)
    return (
        champion is not None
        and champion.version == cand.version
        and current_version(indexes) == release
    )


def service_latency(
    settings: Settings, root: Path, release: str, cand: Candidate, drop: Path, port: int
) -> dict[str, Any]:
    """p95 of ``/search`` from a short load run of the service serving the candidate.

    The service runs as its own process (``bentoml serve``) on ``port``, on a private
    indexes folder whose ``CURRENT`` names the candidate (a link to the real release), with the
    candidate's model folder: the served index and model never change for this.
    """
    from vsearch.local.loadrun import load_run
    from vsearch.local.service import READY_PATH, start_background, stop
    from vsearch.split import heldout_queries

    r = settings.promotion
    held = heldout_queries(drop, settings.split, r.load_photos)
    photos = [(drop / p).read_bytes() for p in held["image"]]
    if not photos:
        raise BadInput(f"{drop}: no held-out query photos for the latency load run")
    indexes = _abs(root, settings.project.indexes_dir)
    with tempfile.TemporaryDirectory(prefix="vsearch-gate-") as tmp:
        private = Path(tmp) / "indexes"
        private.mkdir()
        (private / release).symlink_to((indexes / release).resolve(), target_is_directory=True)
        set_current(private, release)
        env = {
            "VSEARCH__PROJECT__INDEXES_DIR": str(private),
            "VSEARCH__SERVING__MODEL_SOURCE": "path",
            "VSEARCH__SERVING__MODEL_DIR": str(cand.model_dir.resolve()),
            # the candidate already holds the change set's changes: none to apply at load
            "VSEARCH__SERVING__ADMIN_DIR": str(Path(tmp) / "admin"),
        }
        host = settings.serving.host
        proc = start_background(
            host,
            port,
            Path(os.environ.get("VSEARCH_PARAMS", "params.yaml")),
            root,
            Path(tmp) / "service.log",
            settings.serving.start_timeout_s,
            wait_path=READY_PATH,
            env=env,
        )
        try:
            result = load_run(
                f"http://{host}:{port}",
                photos,
                requests=r.load_requests,
                concurrency=r.load_concurrency,
                warmup=r.load_warmup,
            )
        finally:
            stop(proc)
    if result.failed:
        raise GateFailed(
            f"the candidate service failed {result.failed} of {result.requests} load-run "
            f"requests ({result.statuses}); it is not shipped"
        )
    return result.to_dict()


@dataclass
class ChampionReference:
    """What the challenger is compared with: the champion re-scored on its eval set.

    Attributes:
        version: the champion's model version (``None``: there is none).
        metrics: its metrics measured on the challenger's eval set (same queries, same code).
        eval_set: the eval set id those metrics were measured on.
        latency_p95_ms: the p95 of the champion's own promotion load run (its version tag).
        error: why the champion could not be read, loaded or scored (the gate then fails).
        first_release: no champion exists: only the floors apply.
    """

    version: str | None = None
    metrics: dict[str, Any] | None = None
    eval_set: str | None = None
    latency_p95_ms: float | None = None
    error: str | None = None
    first_release: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def candidate_eval_set(cand: Candidate) -> dict[str, Any]:
    """The eval set the candidate was evaluated on (``metrics.json`` ``eval_set``).

    Raises:
        BadInput: the evaluation predates eval sets (re-run ``vsearch evaluate``).
    """
    eval_set = cand.metrics.get("eval_set")
    if not isinstance(eval_set, dict) or not eval_set.get("id") or not cand.metrics.get("inputs"):
        raise BadInput(
            "the candidate's metrics.json names no eval set or inputs (an older evaluation); "
            "re-run `vsearch evaluate` (dvc repro evaluate)"
        )
    return eval_set


def champion_reference(
    settings: Settings,
    root: Path,
    cand: Candidate,
    *,
    first_release: bool | None = None,
    workdir: Path | None = None,
) -> ChampionReference:
    """Find the champion and re-score it on the candidate's eval set; never raises.

    Fail closed: a registry that cannot be read, a champion model that cannot be downloaded,
    verified or scored, or a re-score on another eval set gives a reference with ``error``,
    and the gate fails with that reason. Only a champion alias that does not exist at all is
    the first release.

    Args:
        first_release: ``None`` (default): a missing champion is the first release; ``True``
            (``--first-release``): assert there is no champion yet (error otherwise);
            ``False``: a champion is required (error when there is none).
    """
    from vsearch.evaluation.stage import score_model
    from vsearch.registry.registry import ModelRegistry

    try:
        eval_set = candidate_eval_set(cand)
        reg = ModelRegistry.from_settings(settings)
        champ = reg.champion()
    except Exception as exc:  # fail closed: whatever broke, the gate must not pass
        return ChampionReference(error=f"the champion could not be read: {_why(exc)}")
    if champ is None:
        if first_release is False:
            return ChampionReference(
                error=f"no {reg.champion_alias!r} alias on {reg.model_name!r} and a champion "
                "was required; promote the first model with --first-release"
            )
        return ChampionReference(first_release=True)
    if first_release:
        return ChampionReference(
            version=champ.version,
            error=f"--first-release, but version {champ.version} already is the "
            f"{reg.champion_alias}: not a first release",
        )
    tag = champ.tags.get(TAG_SERVICE_P95)
    ref = ChampionReference(version=champ.version, latency_p95_ms=_float_or_none(tag))
    if champ.version == cand.version:  # the same model: its own figures on the same eval set
        ref.metrics, ref.eval_set = _flat(cand.metrics), str(eval_set["id"])
        return ref
    try:
        with tempfile.TemporaryDirectory(prefix="vsearch-champion-", dir=workdir) as tmp:
            model_dir = reg.download_model(champ.version, Path(tmp) / "model")
            scored = score_model(settings, cand.metrics["inputs"], model_dir, root, Path(tmp))
    except Exception as exc:  # fail closed: an unreadable or unscorable champion fails
        ref.error = (
            f"champion version {champ.version} could not be loaded or re-scored on eval set "
            f"{eval_set['id']}: {_why(exc)}"
        )
        return ref
    ref.metrics, ref.eval_set = dict(scored["metrics"]), str(scored["eval_set"]["id"])
    if ref.eval_set != eval_set["id"]:
        ref.error = (
            f"champion version {champ.version} was re-scored on eval set {ref.eval_set}, the "
            f"candidate on {eval_set['id']}: the inputs changed since the evaluation; re-run it"
        )
    return ref


def run_gates(
    settings: Settings,
    cand: Candidate,
    latency: dict[str, Any],
    champion: ChampionReference,
) -> GateReport:
    """Absolute floors and no regression vs the champion re-scored on the candidate's eval set.

    Every figure names where it was measured: the quality metrics their eval set id, latency
    the load run (the candidate's now, the champion's at its own promotion).
    """
    from vsearch.registry.gates import ANY

    try:
        eval_set = candidate_eval_set(cand)
    except BadInput as exc:
        eval_set = {"id": "", "truth": False}
        champion = ChampionReference(error=str(exc))
    challenger = {**_flat(cand.metrics), LATENCY_METRIC: latency["p95_ms"]}
    requests = latency.get("requests", "?")
    mine = {ANY: str(eval_set["id"]), LATENCY_METRIC: f"candidate load run ({requests} requests)"}
    notes = [f"challenger version {cand.version} evaluated on eval set {eval_set['id']}"]
    reference, theirs = None, None
    if champion.first_release:
        notes.append("first release: no champion yet, only the floors apply")
    elif champion.error is None:
        reference = dict(champion.metrics or {})
        theirs = {ANY: str(champion.eval_set)}
        if champion.latency_p95_ms is not None:
            reference[LATENCY_METRIC] = champion.latency_p95_ms
            theirs[LATENCY_METRIC] = f"version {champion.version}'s own promotion load run"
        notes.append(
            f"champion version {champion.version} re-scored on eval set {champion.eval_set}"
        )
    return evaluate_promotion_gates(
        challenger,
        reference,
        settings.registry.gates,
        has_truth=bool(eval_set.get("truth")),
        challenger_sources=mine,
        champion_sources=theirs,
        champion_error=champion.error,
        notes=notes,
    )


def _flat(metrics: dict[str, Any]) -> dict[str, Any]:
    """The model's metrics of a report (its ``model`` section, else the flat top level)."""
    model = metrics.get("model")
    return dict(model) if isinstance(model, dict) else dict(metrics)


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def activate(
    settings: Settings, root: Path, cand: Candidate, release: str, latency: dict[str, Any]
) -> dict[str, Any]:
    """The gate passed: ``CURRENT`` → release, ``champion`` → version (and its p95 tag).

    The promotion's decision, done once; the I/O after it (:func:`build_bento`,
    :func:`reload_service`) is what may be retried, never this (a retry would re-point the
    alias and record the new champion as its own predecessor).
    """
    from vsearch.registry.registry import ModelRegistry

    indexes = _abs(root, settings.project.indexes_dir)
    previous = current_version(indexes)
    set_current(indexes, release)
    reg = ModelRegistry.from_settings(settings)
    reg.set_champion(cand.version, release)
    reg.client.set_model_version_tag(
        reg.model_name, cand.version, TAG_SERVICE_P95, f"{latency['p95_ms']:.3f}"
    )
    return {"release": release, "previous_release": previous, "champion": cand.version}


def build_bento(root: Path) -> str:
    """``bentoml build`` from ``bentofile.yaml``; returns the Bento tag."""
    bentoml = Path(sys.executable).with_name("bentoml")
    proc = subprocess.run(
        [str(bentoml), "build", "-f", "bentofile.yaml", "--output", "tag", "."],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bentoml build failed:\n{proc.stderr.strip()[-2000:]}")
    tag = proc.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    log.info("built Bento %s", tag)
    return tag


def reload_service(settings: Settings) -> dict[str, Any]:
    """Ask the running service (``serving.host:port``) to switch to the new release/model.

    A service that is not running is not an error (it loads ``CURRENT`` and the champion when
    it starts); one that refuses the reload is (it keeps serving the old release).
    """
    s = settings.serving
    url = f"http://{s.host}:{s.port}"
    token = os.environ.get(s.admin_token_env)
    try:
        httpx.get(url + "/livez", timeout=2.0).raise_for_status()
    except httpx.HTTPError:
        return {"status": "not running", "url": url}
    if not token:
        return {"status": f"running; not reloaded: set {s.admin_token_env}", "url": url}
    resp = httpx.post(
        url + "/admin/reload",
        headers={"Authorization": f"Bearer {token}"},
        timeout=s.request_timeout_s,
    )
    if resp.status_code >= 300:
        raise GateFailed(f"the service at {url} refused the reload: {resp.text[:500]}")
    return {"status": "reloaded", "url": url, **resp.json()}


def _abs(root: Path, path: Path) -> Path:
    return path if path.is_absolute() else root / path
