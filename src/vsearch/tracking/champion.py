"""The registry's champion model folder, for a training run that starts from it (warm start).

Why here and not in :mod:`vsearch.registry`: training sits below the registry (it registers
challengers; the promotion moves the champion), so it may not import it; this is the one read
it needs, with the same checks as :meth:`vsearch.registry.registry.ModelRegistry.download_model`
(the raw model folder of the version's run, its weights matching the version's fingerprint tag).
"""

from __future__ import annotations

import logging
from pathlib import Path

from vsearch.settings import Settings
from vsearch.tracking.tracker import RAW_MODEL_ARTIFACT, TAG_FINGERPRINT, resolve_tracking_uri

log = logging.getLogger(__name__)


def download_champion(
    settings: Settings, dest: Path, tracking_uri: str | None = None
) -> tuple[Path, str] | str:
    """Download the champion's model folder under ``dest``.

    Returns:
        ``(model folder, "champion v<N>")``, or why there is none to start from (no registered
        model, no champion alias, no raw model folder, a fingerprint mismatch): a warm start
        is an optimisation, so these make the run train from scratch rather than fail.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from vsearch.model.export import META_FILE, WEIGHTS_FILE, fingerprint

    uri = resolve_tracking_uri(settings, tracking_uri)
    name = settings.registry.model_name or settings.model.name
    alias = settings.registry.champion_alias
    client = mlflow.MlflowClient(uri)
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return f"no {alias} of {name!r} in the registry"
    label = f"{alias} v{mv.version}"
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(
                run_id=mv.run_id,
                artifact_path=RAW_MODEL_ARTIFACT,
                dst_path=str(dest),
                tracking_uri=uri,
            )
        )
    except Exception as exc:  # MLflow raises several types for "missing"
        return f"{label}: cannot download its {RAW_MODEL_ARTIFACT}/ ({type(exc).__name__})"
    import torch

    weights = local / WEIGHTS_FILE
    if not weights.is_file() or not (local / META_FILE).is_file():
        return f"{label}: its model folder lacks {WEIGHTS_FILE} or {META_FILE}"
    got = fingerprint(torch.load(weights, map_location="cpu", weights_only=True))
    tagged = (mv.tags or {}).get(TAG_FINGERPRINT)
    if tagged is not None and got != tagged:
        return f"{label}: weights fingerprint {got[:12]} differs from its tag {tagged[:12]}"
    log.info("warm start from %s (run %s)", label, mv.run_id)
    return local, label
