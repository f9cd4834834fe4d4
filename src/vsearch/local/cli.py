"""``vsearch services up | down | status``: the local servers and what runs beside them.

Why here: ``down`` stops everything this package starts (the deployments, the demo's
search service, the MLflow and Prefect servers) and ``up`` brings every one of them back
(:mod:`vsearch.local.lifecycle`), so the command group sits beside them.
"""

from __future__ import annotations

import typer

from vsearch.cli_support import emit, get_settings, run_guarded

app = typer.Typer(
    help="Local MLflow + Prefect servers (real processes, SQLite), the deployments' process "
    "and the demo's search service.",
    no_args_is_help=True,
)


@app.command("up")
def up_command() -> None:
    """Start MLflow and Prefect locally (reused if already running), bring back what `down`
    stopped (the deployments' process, the search service) and print their URLs."""

    def body() -> None:
        from vsearch.local.env import client_env
        from vsearch.local.lifecycle import up_all

        settings = get_settings()
        emit(up_all(settings), as_json=False)
        env = client_env(settings.services)
        exports = " ".join(f"{k}={env[k]}" for k in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"))
        typer.echo(f"export {exports}")

    run_guarded(body)


@app.command("down")
def down_command() -> None:
    """Stop the deployments, the demo's service and the servers started by ``up``
    (``up`` brings them all back)."""

    def body() -> None:
        from vsearch.local.lifecycle import down_all

        stopped = down_all(get_settings())
        typer.echo(f"stopped: {stopped or 'nothing'}")

    run_guarded(body)


@app.command("status")
def status_command(json_out: bool = typer.Option(False, "--json")) -> None:
    """Each server's URL, pid and health; the deployments (registered on Prefect? their
    runner?) and the search service; a problem line when a schedule has no runner."""

    def body() -> None:
        from vsearch.local.lifecycle import status_all

        report = status_all(get_settings())
        emit(report, as_json=json_out)
        if not json_out:
            for problem in report["problems"]:
                typer.echo(f"PROBLEM: {problem}", err=True)

    run_guarded(body)
