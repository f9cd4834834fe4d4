"""Prefect flow ``promotion``: gate the challenger, then ship it (or change nothing).

Thin wiring over :mod:`vsearch.registry.promotion`: candidate index (built without touching
``CURRENT``, reused when this model already has one) → a short load run of the real service
serving it → the champion re-scored on the candidate's eval set (same queries, same code) →
gates (floors, no regression vs that champion; a champion that cannot be read or scored
fails them) → on pass: ``CURRENT``, the ``champion`` alias, the Bento, a reload of the
running service. On fail the flow publishes which gate failed by how much, each figure with
the eval set it was measured on, and ends Failed; champion, ``CURRENT`` and the serving index
are untouched. Shipping is a subflow ``ship``: ``CURRENT`` and the champion alias move once
(never retried); only its I/O retries, each step on its own (the Bento build, the reload POST).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from vsearch.data.ingest import current_view
from vsearch.errors import GateFailed
from vsearch.registry import promotion as steps
from vsearch.settings import Settings, load_settings

ARTIFACT_KEY = "promotion-gate"


@task(name="load-candidate", cache_policy=NO_CACHE)
def load_candidate(run_folder: Path, metrics: Path) -> steps.Candidate:
    return steps.load_candidate(run_folder, metrics)


@task(name="index-build", cache_policy=NO_CACHE)
def index_build(
    settings: Settings, root: Path, cand: steps.Candidate, drops: list[Path]
) -> tuple[str, bool]:
    """The candidate index release (not activated), carrying the catalog of ``drops``."""
    return steps.candidate_release(settings, root, cand, drops)


@task(name="service-load-run", cache_policy=NO_CACHE)
def load_run(
    settings: Settings, root: Path, release: str, cand: steps.Candidate, drop: Path
) -> dict[str, Any]:
    with socket.socket() as s:  # a free port for the private candidate service
        s.bind((settings.serving.host, 0))
        port = s.getsockname()[1]
    return steps.service_latency(settings, root, release, cand, drop, port)


@task(name="champion-rescore", cache_policy=NO_CACHE)
def champion_rescore(
    settings: Settings, root: Path, cand: steps.Candidate, first_release: bool | None
) -> steps.ChampionReference:
    """The champion re-scored on the candidate's eval set (or why it could not be)."""
    return steps.champion_reference(settings, root, cand, first_release=first_release)


@task(name="gates", cache_policy=NO_CACHE)
def gates(
    settings: Settings,
    cand: steps.Candidate,
    latency: dict[str, Any],
    champion: steps.ChampionReference,
) -> Any:
    return steps.run_gates(settings, cand, latency, champion)


@task(name="activate", cache_policy=NO_CACHE)  # never retried: the alias moves once
def activate(
    settings: Settings, root: Path, cand: steps.Candidate, release: str, latency: dict[str, Any]
) -> dict[str, Any]:
    return steps.activate(settings, root, cand, release, latency)


@task(name="bento-build", cache_policy=NO_CACHE)
def bento_build(root: Path) -> str:
    return steps.build_bento(root)


@task(name="service-reload", cache_policy=NO_CACHE)
def service_reload(settings: Settings) -> dict[str, Any]:
    return steps.reload_service(settings)


@flow(name="ship")
def ship(
    settings: Settings, root: Path, cand: steps.Candidate, release: str, latency: dict[str, Any]
) -> dict[str, Any]:
    """``CURRENT`` and the champion alias once; then the Bento and the service reload, each
    retried (``promotion.io_retries``) on its own: a failed reload never moves an alias again."""
    p = settings.promotion
    io = {"retries": p.io_retries, "retry_delay_seconds": p.io_retry_delay_s}
    out = activate(settings, root, cand, release, latency)
    out["bento"] = bento_build.with_options(**io)(root) if p.build_bento else None
    out["reload"] = service_reload.with_options(**io)(settings)
    return out


@flow(name="promotion")
def promotion_flow(
    repo_root: str = ".",
    run_folder: str = "runs/train",
    metrics: str = "reports/metrics.json",
    first_release: bool | None = None,
) -> dict[str, Any]:
    """Gate the model trained in ``run_folder`` (evaluated in ``metrics``) and ship it on pass.

    Args:
        first_release: ``None``: a missing champion alias is the first release (floors only);
            ``True`` (``--first-release``): assert that there is no champion yet; ``False``:
            require a champion. An *unreadable* champion always fails the gate.

    Raises:
        GateFailed: a gate failed (the artifact ``promotion-gate`` says which, by how much).
    """
    log = get_run_logger()
    root = Path(repo_root).resolve()
    settings = load_settings(root / "params.yaml")
    cand = load_candidate(root / run_folder, root / metrics)
    drop = current_view(settings, root)  # the merged window the model was trained on
    release, reused = index_build(settings, root, cand, [drop])
    if steps.already_shipped(settings, root, cand, release):
        log.info(
            "version %s with index %s is already serving: nothing to ship", cand.version, release
        )
        return {
            "shipped": False,
            "version": cand.version,
            "release": release,
            "reason": "already the champion and CURRENT",
        }
    latency = load_run(settings, root, release, cand, drop)
    champion = champion_rescore(settings, root, cand, first_release)
    report = gates(settings, cand, latency, champion)
    head = (
        f"# Promotion gate: model version {cand.version} with index {release}"
        f"{' (reused)' if reused else ''}\n\n"
        f"Service load run: p50 {latency['p50_ms']:.1f} ms, p95 {latency['p95_ms']:.1f} ms, "
        f"{latency['rps']:.1f} req/s over {latency['requests']} requests.\n\n"
    )
    if not report.passed:
        create_markdown_artifact(
            key=ARTIFACT_KEY,
            markdown=head + "**FAILED**: nothing changed.\n\n" + report.markdown(),
            description=f"gate failed for version {cand.version}",
        )
        raise GateFailed(f"promotion gate failed for version {cand.version}: {report.summary()}")
    log.info(report.summary())
    shipped = ship(settings, root, cand, release, latency)
    create_markdown_artifact(
        key=ARTIFACT_KEY,
        markdown=head
        + f"**PASSED**: champion = version {cand.version}, CURRENT = {release}, "
        + f"Bento {shipped.get('bento')}, service: {shipped['reload']['status']}.\n\n"
        + report.markdown(),
        description=f"version {cand.version} shipped",
    )
    log.info("shipped version %s with index %s", cand.version, release)
    return {
        "shipped": True,
        "version": cand.version,
        "latency": latency,
        "gate": report.to_dict(),
        **shipped,
    }
