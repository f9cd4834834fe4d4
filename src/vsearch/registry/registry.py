"""The model registry: versions, the challenger / champion aliases, verified downloads.

Why aliases and not stages: the service pins a model by alias resolved at start-up
(``models:/<name>@champion``), never ``latest`` (docs/operations.md#the-search-service). Training
points ``challenger`` at each new click-trained version; ``champion`` moves only through the release
gate (:meth:`ModelRegistry.set_champion`, called by the promotion flow after the gates passed),
except that the very first model may be promoted by hand with ``vsearch promote`` so a fresh
installation has something to serve. The alias names are settings (``registry.champion_alias``,
``registry.challenger_alias``).

Aliases are read with ``get_registered_model`` / ``get_model_version_by_alias``: on SQLite,
``search_model_versions`` may return versions without their aliases
(docs/operations.md#tool-behaviour-we-rely-on).

A downloaded model is checked twice: its weights against its own ``model.json`` (by
:func:`vsearch.model.export.load_model`'s rule) and its fingerprint against the version's
``fingerprint`` tag, so a model folder can never be silently swapped under a version.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vsearch.errors import BadInput
from vsearch.settings import Settings
from vsearch.tracking.tracker import (
    EVAL_ARTIFACT,
    RAW_MODEL_ARTIFACT,
    TAG_FINGERPRINT,
    require_server,
    resolve_tracking_uri,
)

log = logging.getLogger(__name__)

PROMOTION_FLOW = "the promotion gate (Prefect flow `promotion`, flows/promotion.py)"
TAG_INDEX_RELEASE = "index_release"
TAG_PROMOTED_BY = "promoted_by"
TAG_PROMOTED_AT = "promoted_at"
TAG_PREVIOUS_CHAMPION = "previous_champion"


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version, with the aliases that point at it."""

    name: str
    version: str
    run_id: str | None
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def fingerprint(self) -> str | None:
        return self.tags.get(TAG_FINGERPRINT)

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``: pinned, unlike an alias."""
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["aliases"] = list(self.aliases)
        d["fingerprint"] = self.fingerprint
        d["uri"] = self.uri
        return d


class ModelRegistry:
    """The registered model ``model_name`` on one tracking server."""

    def __init__(
        self,
        tracking_uri: str,
        model_name: str,
        timeout_s: float,
        *,
        champion_alias: str,
        challenger_alias: str,
    ) -> None:
        """Connect (fails fast with :class:`~vsearch.tracking.tracker.TrackingUnavailable`).

        ``champion_alias`` is the alias the promotion gate moves, ``challenger_alias`` the one
        training points at each new version (``registry.*_alias`` in the settings).
        """
        import mlflow

        require_server(tracking_uri, timeout_s)
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.champion_alias = champion_alias
        self.challenger_alias = challenger_alias
        self.client = mlflow.MlflowClient(tracking_uri, registry_uri=tracking_uri)

    @classmethod
    def from_settings(cls, settings: Settings, tracking_uri: str | None = None) -> ModelRegistry:
        """The registry of ``registry.model_name`` on the configured tracking server."""
        r = settings.registry
        name = r.model_name or settings.model.name
        uri = resolve_tracking_uri(settings, tracking_uri)
        return cls(
            uri,
            name,
            r.connect_timeout_s,
            champion_alias=r.champion_alias,
            challenger_alias=r.challenger_alias,
        )

    # -- reading ---------------------------------------------------------------------------------
    def aliases(self) -> dict[str, str]:
        """``alias -> version`` (empty when nothing is registered yet)."""
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(self.model_name)
        except MlflowException:
            return {}
        return {str(k): str(v) for k, v in (model.aliases or {}).items()}

    def _info(self, mv: Any, aliases: dict[str, str]) -> VersionInfo:
        version = str(mv.version)
        return VersionInfo(
            name=self.model_name,
            version=version,
            run_id=mv.run_id,
            aliases=tuple(sorted(a for a, v in aliases.items() if v == version)),
            tags=dict(mv.tags or {}),
            source=str(mv.source or ""),
        )

    def champion(self) -> VersionInfo | None:
        """The champion version; ``None`` only when there is none at all (the first release).

        Fail closed: unlike :meth:`find`, only a registered model that does not exist or has
        no champion alias reads as "no champion"; any other error (server, permissions, an
        alias pointing at a version that cannot be read) propagates, so a broken registry can
        never pass for a first release.
        """
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(self.model_name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        aliases = {str(k): str(v) for k, v in (model.aliases or {}).items()}
        version = aliases.get(self.champion_alias)
        if version is None:
            return None
        return self._info(self.client.get_model_version(self.model_name, version), aliases)

    def find(self, alias: str) -> VersionInfo | None:
        """The version an alias points at, or ``None``."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException:
            return None
        return self._info(mv, self.aliases())

    def latest(self) -> VersionInfo | None:
        """The highest version number, or ``None`` when nothing is registered."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(
                f"name='{self.model_name}'", max_results=1, order_by=["version_number DESC"]
            )
        except MlflowException:
            return None
        if not found:
            return None
        # search results may lack tags/aliases on SQLite: read the version itself
        return self.get_version(str(found[0].version))

    def get_version(self, ref: str) -> VersionInfo:
        """A version by number (``"3"``) or alias (``"champion"``).

        Raises:
            BadInput: no such version or alias (the message lists the aliases there are).
        """
        from mlflow.exceptions import MlflowException

        aliases = self.aliases()
        try:
            if ref.isdigit():
                mv = self.client.get_model_version(self.model_name, ref)
            else:
                mv = self.client.get_model_version_by_alias(self.model_name, ref)
        except MlflowException:
            have = ", ".join(f"{a}={v}" for a, v in sorted(aliases.items())) or "none"
            raise BadInput(
                f"model {self.model_name!r} has no version or alias {ref!r} on "
                f"{self.tracking_uri} (aliases: {have}); train one with `vsearch train`"
            ) from None
        return self._info(mv, aliases)

    # -- aliases ---------------------------------------------------------------------------------
    def promote(self, version: str | None = None) -> VersionInfo:
        """Make ``version`` the first champion (by hand: ``vsearch promote``).

        ``version`` defaults to the ``challenger`` alias, else the latest version. Once a
        champion exists, only the promotion gate moves it, so this refuses (naming the gate)
        unless the version asked for already is the champion.

        Raises:
            BadInput: nothing registered, no such version, or a champion already exists.
        """
        aliases = self.aliases()
        if version is None:
            target = self.find(self.challenger_alias) or self.latest()
            if target is None:
                raise BadInput(
                    f"no model registered as {self.model_name!r} on {self.tracking_uri}; "
                    "train one with `vsearch train` first"
                )
        else:
            target = self.get_version(version)
        current = aliases.get(self.champion_alias)
        if current == target.version:
            log.info("version %s already is the champion", current)
            return target
        if current is not None:
            raise BadInput(
                f"refused: version {current} is the champion of {self.model_name!r}; after the "
                f"first model the champion moves only through {PROMOTION_FLOW}, which checks "
                f"version {target.version} against the floors and against the champion"
            )
        self._set_champion(target.version, {TAG_PROMOTED_BY: "vsearch promote"})
        return self.get_version(target.version)

    def set_champion(self, version: str, index_release: str) -> VersionInfo:
        """Point ``champion`` at ``version`` (the promotion gate passed for it and its index).

        Tags the version with the index release built from it, who promoted it and when, and
        which version was champion before (the rollback target).
        """
        target = self.get_version(version)
        previous = self.aliases().get(self.champion_alias)
        tags = {TAG_PROMOTED_BY: "promotion gate", TAG_INDEX_RELEASE: index_release}
        if previous is not None and previous != target.version:
            tags[TAG_PREVIOUS_CHAMPION] = previous
        self._set_champion(target.version, tags)
        return self.get_version(target.version)

    def _set_champion(self, version: str, tags: dict[str, str]) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        for key, value in {**tags, TAG_PROMOTED_AT: stamp}.items():
            self.client.set_model_version_tag(self.model_name, version, key, value)
        self.client.set_registered_model_alias(self.model_name, self.champion_alias, version)
        log.info("%s version %s is now the %s", self.model_name, version, self.champion_alias)

    # -- artifacts -------------------------------------------------------------------------------
    def download_model(self, ref: str, dest: Path) -> Path:
        """Download a version's model folder to ``dest`` and verify it; returns ``dest``.

        ``dest`` then loads with :func:`vsearch.model.export.load_model`. It is replaced only
        after the download verified, so a failed download leaves an older copy intact.

        Raises:
            BadInput: unknown version/alias, missing artifacts, or a fingerprint mismatch.
        """
        import mlflow

        info = self.get_version(ref)
        if not info.run_id:
            raise BadInput(f"{info.uri} has no run: it was not registered by vsearch")
        dest = dest.resolve()
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(
                    run_id=info.run_id,
                    artifact_path=RAW_MODEL_ARTIFACT,
                    dst_path=tmp,
                    tracking_uri=self.tracking_uri,
                )
            except Exception as exc:  # MLflow raises several types for "missing"
                raise BadInput(
                    f"{info.uri}: cannot download {RAW_MODEL_ARTIFACT}/ of run {info.run_id} "
                    f"({exc})"
                ) from None
            _verify(Path(local), info)
            if dest.exists():
                shutil.rmtree(dest)
            Path(local).rename(dest)
        log.info("downloaded %s (fingerprint %s) to %s", info.uri, str(info.fingerprint)[:12], dest)
        return dest

    def evaluation_report(self, ref: str) -> dict[str, Any] | None:
        """The ``metrics.json`` logged with a version's run (``None`` if never evaluated).

        Exact metric names (``identical_recall@10``), unlike MLflow's metric keys. Only a run
        without that artifact reads as ``None``; a failed listing, download or parse raises
        (the promotion gate re-scores the champion anyway and never trusts these figures from
        another eval set).
        """
        import mlflow

        info = self.get_version(ref)
        if not info.run_id:
            return None
        listed = {a.path for a in self.client.list_artifacts(info.run_id, EVAL_ARTIFACT)}
        wanted = f"{EVAL_ARTIFACT}/metrics.json"
        if wanted not in listed:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(
                run_id=info.run_id,
                artifact_path=wanted,
                dst_path=tmp,
                tracking_uri=self.tracking_uri,
            )
            return json.loads(Path(path).read_text())


def _verify(model_dir: Path, info: VersionInfo) -> None:
    """Weights match model.json, and model.json matches the version's fingerprint tag."""
    import torch

    from vsearch.model.export import META_FILE, WEIGHTS_FILE, fingerprint

    meta_path, weights = model_dir / META_FILE, model_dir / WEIGHTS_FILE
    if not meta_path.is_file() or not weights.is_file():
        raise BadInput(f"{info.uri}: the downloaded folder lacks {META_FILE} or {WEIGHTS_FILE}")
    got = fingerprint(torch.load(weights, map_location="cpu", weights_only=True))
    recorded = json.loads(meta_path.read_text()).get("fingerprint")
    if got != recorded or (info.fingerprint is not None and got != info.fingerprint):
        raise BadInput(
            f"{info.uri}: weights fingerprint {got[:12]} differs from model.json "
            f"({str(recorded)[:12]}) or the version tag ({str(info.fingerprint)[:12]}); "
            "the stored model was altered: re-register it from its training run"
        )
