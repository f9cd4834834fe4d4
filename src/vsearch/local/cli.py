"""``vsearch services up | down | status``: the local servers and what runs beside them.

Why here: ``down`` stops everything this package starts (the deployments, the demo's
search service, the MLflow and Prefect servers), so the command group sits beside them.
"""

from __future__ import annotations

import typer

from vsearch.cli_support import emit, get_settings, run_guarded
from vsearch.local.env import client_env, state_dir
from vsearch.local.servers import down, status, up

app = typer.Typer(
    help="Local MLflow + Prefect servers (real processes, SQLite).", no_args_is_help=True
)


@app.command("up")
def up_command() -> None:
    """Start MLflow and Prefect locally (reused if already running) and print their URLs."""

    def body() -> None:
        s = get_settings().services
        infos = up(s)
        emit(
            {name: {"url": i.url, "pid": i.pid, "log": i.log_file} for name, i in infos.items()},
            as_json=False,
        )
        env = client_env(s)
        exports = " ".join(f"{k}={env[k]}" for k in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL"))
        typer.echo(f"export {exports}")

    run_guarded(body)


@app.command("down")
def down_command() -> None:
    """Stop the servers started by ``up``, the deployments and the demo's service."""

    def body() -> None:
        from vsearch.local.deployment import deploy_down  # only `down` needs these two
        from vsearch.local.service import stop_detached

        settings = get_settings()
        stopped = ["deployments (nightly, baselines)"] if deploy_down(settings) else []
        if stop_detached(state_dir(settings.services)):
            stopped.append("search service")
        stopped += down(settings.services)
        typer.echo(f"stopped: {stopped or 'nothing'}")

    run_guarded(body)


@app.command("status")
def status_command(json_out: bool = typer.Option(False, "--json")) -> None:
    """Show each server's URL, pid and health."""
    run_guarded(lambda: emit(status(get_settings().services), as_json=json_out))
