"""The promotion's steps: candidate index, service load run, gates, ship.

Why these steps, in this order (docs/operations.md#the-promotion-gate): a challenger ships only if
its *service* is good, so the gate reads the evaluation's quality figures and a latency measured by
a short load run of the real service (HTTP, decode, model, search) serving the candidate index; and
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
from dataclasses import dataclass
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
    weight = (cand.metrics.get("model") or {}).get("fusion_weight")
    calibration = {"fusion_weight": weight} if weight is not None else None
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
            "calibration": calibration,  # the fusion weight evaluation calibrated, for serving
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


def run_gates(
    settings: Settings, cand: Candidate, latency: dict[str, Any]
) -> tuple[GateReport, dict[str, Any] | None]:
    """Absolute floors and no regression vs the champion; returns the report and the champion
    figures compared against (``None`` for the first-ever release)."""
    from vsearch.registry.registry import ModelRegistry

    reg = ModelRegistry.from_settings(settings)
    challenger = {**cand.metrics, LATENCY_METRIC: latency["p95_ms"]}
    champion = reg.find(reg.champion_alias)
    reference = None
    if champion is not None:
        reference = dict(reg.evaluation_report(reg.champion_alias) or {})
        measured = champion.tags.get(TAG_SERVICE_P95)
        if measured is not None:  # compare like with like: the champion's own load run
            reference[LATENCY_METRIC] = float(measured)
    return evaluate_promotion_gates(challenger, reference, settings.registry.gates), reference


def promote(
    settings: Settings, root: Path, cand: Candidate, release: str, latency: dict[str, Any]
) -> dict[str, Any]:
    """The gate passed: ``CURRENT`` → release, ``champion`` → version, Bento, service reload."""
    from vsearch.registry.registry import ModelRegistry

    indexes = _abs(root, settings.project.indexes_dir)
    previous = current_version(indexes)
    set_current(indexes, release)
    reg = ModelRegistry.from_settings(settings)
    reg.set_champion(cand.version, release)
    reg.client.set_model_version_tag(
        reg.model_name, cand.version, TAG_SERVICE_P95, f"{latency['p95_ms']:.3f}"
    )
    out: dict[str, Any] = {"release": release, "previous_release": previous}
    out["champion"] = cand.version
    out["bento"] = build_bento(root) if settings.promotion.build_bento else None
    out["reload"] = reload_service(settings)
    return out


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
