"""``vsearch`` command line (docs/cli.md): one sub-command per stage.

Why thin: every command loads settings once, calls one library function and maps errors to exit
codes (0 ok, 2 bad input / failed gate, 1 unexpected). Tests call the same library functions.
Sub-command groups (``world``, ``index``, ``services``) live beside the code they drive.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from vsearch.cli_support import _State, configure, emit, get_settings, run_guarded
from vsearch.errors import BadInput
from vsearch.local.env import admin_token
from vsearch.settings import DEFAULT_PARAMS, Settings

app = typer.Typer(
    name="vsearch",
    help="Visual product search: demo world, validated data, training, binary index, service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main(
    params: Path = typer.Option(DEFAULT_PARAMS, "--params", help="params.yaml to read"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging"),
) -> None:
    """Visual product search: demo world, validated data, training, binary index, service."""
    configure(params, verbose)


@app.command("ingest")
def ingest_command(
    drop_dir: Path = typer.Argument(..., help="drop folder in the contract format"),
    truth: Path | None = typer.Option(None, "--truth", help="demo ground truth (kept apart)"),
    accept_volume: bool = typer.Option(
        False, "--accept-volume", help="no volume-vs-history bound (a real jump you checked)"
    ),
    json_out: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Validate a drop; only if it passes, add it to data/raw/<drop_id>/, version it (DVC),
    record it in the drop ledger and select the window of drops that ends with it."""
    from vsearch.data.ingest import ingest_drop, ingest_markdown

    def body() -> None:
        res = ingest_drop(
            drop_dir, get_settings(), Path.cwd(), truth=truth, accept_volume=accept_volume
        )
        if json_out:
            emit(res.to_dict(), as_json=True)
        else:
            typer.echo(ingest_markdown(res))

    run_guarded(body)


def _connect() -> Settings:
    """Servers up and their URLs in this process's environment (before Prefect is imported)."""
    from vsearch.local.env import apply_client_env
    from vsearch.local.servers import up

    settings = get_settings()
    up(settings.services)
    apply_client_env(settings.services)  # Prefect reads its settings when it is imported
    return settings


LOCK_HELD = (
    "another nightly or baselines run (a scheduled one, or the demo's baselines in the "
    "background?) holds the project lock; wait for it to finish (Prefect UI) and run again"
)


def _under_lock(run: Callable[[], Any]) -> dict:
    """``run()`` (a nightly or baselines flow); a clear refusal when the project lock is held
    (the flow then ends Cancelled, or returns its state instead of a result)."""
    from prefect.exceptions import CancelledRun

    try:
        res = run()
    except CancelledRun:
        res = None
    if not isinstance(res, dict):
        raise BadInput(LOCK_HELD)
    return res


def _run_nightly(
    drop: Path | None,
    truth: Path | None,
    *,
    demo: bool = False,
    accept_volume: bool = False,
    first_release: bool | None = None,
) -> dict:
    """The nightly flow now, in this process, against the local Prefect server."""
    settings = _connect()
    admin_token(settings)
    from flows.nightly import nightly_flow

    return _under_lock(
        lambda: nightly_flow(
            drop=str(drop) if drop else None,
            truth=str(truth) if truth else None,
            repo_root=str(Path.cwd()),
            params=str(_State.params),
            demo=demo,
            accept_volume=accept_volume,
            first_release=first_release,
        )
    )


@app.command("pipeline")
def pipeline_command(
    drop: Path | None = typer.Option(
        None, "--drop", help="one drop folder; default: the new drops of ingest.incoming"
    ),
    truth: Path | None = typer.Option(None, "--truth", help="ground truth of --drop (demo only)"),
    accept_volume: bool = typer.Option(
        False, "--accept-volume", help="no volume-vs-history bound for this night's drops"
    ),
    first_release: bool = typer.Option(
        False,
        "--first-release",
        help="the very first model: refuse if a champion exists (default: a missing champion "
        "alias is the first release, an unreadable one fails the gate)",
    ),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Run the nightly flow now on the local Prefect server (starts the servers if needed):
    new incoming drops (or --drop), then training and promotion unless nothing changed."""
    run_guarded(
        lambda: emit(
            _run_nightly(
                drop, truth, accept_volume=accept_volume, first_release=first_release or None
            ),
            json_out,
        )
    )


@app.command("deploy")
def deploy_command(json_out: bool = typer.Option(False, "--json")) -> None:
    """Register the nightly and weekly baselines deployments (crons from params) and serve their
    runs in the background."""
    from vsearch.local.deployment import deploy_up

    def body() -> None:
        settings = _connect()
        admin_token(settings)  # scheduled runs reload the running service with it
        info = deploy_up(settings, Path.cwd(), _State.params, settings.schedule.register_timeout_s)
        emit(info, json_out)

    run_guarded(body)


@app.command("baselines")
def baselines_command(json_out: bool = typer.Option(False, "--json")) -> None:
    """Measure the comparison baselines now (the Prefect flow ``baselines``; starts the
    servers if needed): oracle and category-only trainings, colour histogram, untrained net,
    on the current window; unchanged inputs skip them (DVC). The evaluation report shows them."""

    def body() -> None:
        _connect()
        from flows.baselines import baselines_flow
        from vsearch.evaluation.figures import figures_markdown
        from vsearch.local.timing import timing_text

        res = _under_lock(lambda: baselines_flow(repo_root=str(Path.cwd())))
        if json_out:
            emit(res, as_json=True)
            return
        typer.echo(figures_markdown(res["figures"]) if res["figures"] else "no figures")
        typer.echo("\ntime per stage:\n" + timing_text(res["timings"]))

    run_guarded(body)


@app.command("demo")
def demo_command() -> None:
    """The main job: servers, the deployments, the nightly flow on the demo world now, then the
    search service left running; the comparison baselines start in the background (when not up
    to date); prints where to look and the time each stage took."""

    def body() -> None:
        from vsearch.local.deployment import deploy_up
        from vsearch.local.env import client_env
        from vsearch.local.service import ensure_detached, stop_detached
        from vsearch.local.timing import timed, timing_text

        timings: list[dict] = []
        with timed(timings, "servers"):
            settings = _connect()
            token = admin_token(settings)
        with timed(timings, "deployments"):
            dep = deploy_up(
                settings, Path.cwd(), _State.params, settings.schedule.register_timeout_s
            )
        res = _run_nightly(None, None, demo=True)
        timings += res["timings"]
        s = settings.serving
        # A fresh service process: it runs this checkout's code on what the promotion shipped.
        with timed(timings, "service"):
            stop_detached(settings.services.state_dir, s.stop_grace_s)
            served = ensure_detached(
                s.host,
                s.port,
                _State.params,
                Path.cwd(),
                settings.services.state_dir,
                s.start_timeout_s,
                env={s.admin_token_env: token},
            )
        baselines = _demo_baselines()
        env = client_env(settings.services)
        prefect_ui = env["PREFECT_API_URL"].removesuffix("/api")
        ing, tr, promo = res["ingest"], res["training"], res["promotion"]
        metrics = json.loads(Path(tr["metrics_path"]).read_text())
        typer.echo(
            "\n".join(
                [
                    "",
                    "vsearch demo finished.",
                    f"  search service {served['url']}/  (OpenAPI: /docs.json)",
                    f"  drop           {ing['drop_id']}  (DVC hash {ing['dvc_hash']})",
                    f"  validation     {ing['report_path']}",
                    f"  Data Docs      {ing['docs_path'] or '(not built)'}",
                    f"  metrics        {tr['metrics_path']}",
                    f"    from clicks  {_figures_line(metrics, CLICK_FIGURES)}",
                    f"    from truth   {_figures_line(metrics, TRUTH_FIGURES)}",
                    f"  promotion      {_promotion_line(promo)}",
                    f"  baselines      {baselines}",
                    f"  Prefect UI     {prefect_ui}  (nightly run {res['flow_run_id']}; "
                    f"deployments {dep['name']} cron {dep['cron']}, "
                    f"{dep['baselines']['name']} cron {dep['baselines']['cron']})",
                    f"  MLflow UI      {env['MLFLOW_TRACKING_URI']}",
                    f"  admin token    {settings.services.state_dir / 'admin_token'}",
                    "  everything keeps running; stop it with: .venv/bin/vsearch services down",
                    "",
                    "time per stage (seconds):",
                    timing_text(timings),
                ]
            )
        )

    run_guarded(body)


# The demo's summary: both metric families (clicks for every shop, truth for the demo world).
CLICK_FIGURES = ("click_recall@1", "click_recall@10", "click_mrr", "click_category_acc_fused")
TRUTH_FIGURES = ("identical_recall@1", "identical_recall@10", "category_acc_fused", "box_iou_mean")


def _figures_line(metrics: dict, keys: tuple[str, ...]) -> str:
    """``key value`` pairs of ``metrics`` (3 decimals); the ones it lacks are left out."""
    shown = [f"{k} {metrics[k]:.3f}" for k in keys if isinstance(metrics.get(k), int | float)]
    return ", ".join(shown) or "(none)"


def _demo_baselines() -> str:
    """Start the baselines flow in the background unless its stages are up to date.

    Why in the background: the baselines take two more trainings; the demo ends with the
    service up within its time budget and the figures follow (the evaluation report then
    shows them). Returns the line the demo prints.
    """
    from flows.baselines import STAGES
    from vsearch.data import dvc
    from vsearch.local.deployment import start_baselines_run

    pending = dvc.status(list(STAGES), Path.cwd())
    if not pending:
        return "up to date (reports/baselines/metrics.json; `vsearch baselines` re-measures)"
    try:
        run_id = start_baselines_run()
    except Exception as exc:  # off the critical path: say so, never fail the demo
        return f"not started ({exc}); `vsearch baselines` measures them"
    return (
        f"measuring in the background (Prefect flow run {run_id}, two trainings: about "
        "20 min on 2 cores); the evaluation report shows them when done. "
        "`vsearch baselines` runs them in the foreground instead"
    )


def _promotion_line(promo: dict) -> str:
    if promo.get("shipped"):
        return f"shipped model version {promo['version']} with index {promo['release']}"
    return f"unchanged ({promo.get('reason', 'nothing new')}): version {promo.get('version')}"


@app.command("serve")
def serve_command(
    host: str | None = typer.Option(None, "--host", help="default: serving.host"),
    port: int | None = typer.Option(None, "--port", help="default: serving.port"),
) -> None:
    """Run the BentoML service over HTTP (foreground; Ctrl+C or SIGTERM stops it and its
    workers, SIGKILL after serving.stop_grace_s)."""
    from vsearch.local.service import serve_foreground

    def body() -> None:
        s = get_settings().serving
        raise typer.Exit(
            serve_foreground(
                host or s.host, port or s.port, _State.params, Path.cwd(), s.stop_grace_s
            )
        )

    run_guarded(body)


def _register_groups() -> None:
    """Attach sub-command groups that live next to the code they drive (imports stay light)."""
    from vsearch.index.cli import app as index_app
    from vsearch.local.cli import app as services_app
    from vsearch.world.cli import app as world_app

    app.add_typer(world_app, name="world")
    app.add_typer(index_app, name="index")
    app.add_typer(services_app, name="services")
    from vsearch.data.cli import window_command
    from vsearch.evaluation.cli import evaluate_baselines_command, evaluate_command
    from vsearch.mining.cli import mine_command
    from vsearch.registry.cli import promote_command, register_command
    from vsearch.search.cli import search_command
    from vsearch.training.cli import train_command
    from vsearch.validation.cli import validate_command

    app.command("validate")(validate_command)
    app.command("window")(window_command)
    app.command("mine")(mine_command)
    app.command("train")(train_command)
    app.command("register")(register_command)
    app.command("promote")(promote_command)
    app.command("evaluate")(evaluate_command)
    app.command("evaluate-baselines")(evaluate_baselines_command)
    app.command("search")(search_command)


_register_groups()
