"""``vsearch`` command line (DESIGN.md section 10): one sub-command per stage.

Why thin: every command loads settings once, calls one library function and maps errors to exit
codes (0 ok, 2 bad input / failed gate, 1 unexpected). Tests call the same library functions.
Sub-command groups (``world``, ``index``, ``services``) live beside the code they drive.
"""

from __future__ import annotations

from pathlib import Path

import typer

from vsearch.cli_support import _State, configure, emit, get_settings, run_guarded
from vsearch.settings import DEFAULT_PARAMS

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
    json_out: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Validate a drop; only if it passes, add it to data/raw/<drop_id>/ and version it (DVC)."""
    from vsearch.data.ingest import ingest_drop, ingest_markdown

    def body() -> None:
        res = ingest_drop(drop_dir, get_settings(), Path.cwd(), truth=truth)
        if json_out:
            emit(res.to_dict(), as_json=True)
        else:
            typer.echo(ingest_markdown(res))

    run_guarded(body)


def _run_pipeline(drop: Path | None, truth: Path | None, reuse_existing: bool) -> dict:
    """Run the pipeline flow in this process against the local Prefect server."""
    from vsearch.services import apply_client_env, up

    settings = get_settings()
    up(settings.services)
    apply_client_env(settings.services)  # before Prefect is imported: it reads env at import
    from flows.ingest import ingest_flow
    from flows.training import training_flow

    res = ingest_flow(
        drop=str(drop) if drop else None,
        truth=str(truth) if truth else None,
        params=str(_State.params),
        repo_root=str(Path.cwd()),
        reuse_existing=reuse_existing,
    )
    res["training"] = training_flow(repo_root=str(Path.cwd()))
    return res


@app.command("pipeline")
def pipeline_command(
    drop: Path | None = typer.Option(None, "--drop", help="drop folder; default: the demo world"),
    truth: Path | None = typer.Option(None, "--truth", help="ground truth of --drop (demo only)"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Run the pipeline flow now on the local Prefect server (starts the servers if needed)."""
    run_guarded(lambda: emit(_run_pipeline(drop, truth, reuse_existing=drop is None), json_out))


@app.command("demo")
def demo_command() -> None:
    """The main job: services up, the whole pipeline on the demo world, then where to look."""

    def body() -> None:
        from vsearch.services import client_env

        res = _run_pipeline(None, None, reuse_existing=True)
        env = client_env(get_settings().services)
        prefect_ui = env["PREFECT_API_URL"].removesuffix("/api")
        typer.echo(
            "\n".join(
                [
                    "",
                    "vsearch demo finished.",
                    f"  drop           {res['drop_id']}  (DVC hash {res['dvc_hash']})",
                    f"  data           {res['raw_path']}",
                    f"  ground truth   {res['truth_path']}",
                    f"  validation     {res['report_path']}",
                    f"  Data Docs      {res['docs_path'] or '(not built)'}",
                    f"  Prefect run    {prefect_ui}/runs/flow-run/{res['flow_run_id']}",
                    f"  metrics        {res['training']['metrics_path']}",
                    f"  training run   {prefect_ui}/runs/flow-run/{res['training']['flow_run_id']}",
                    f"  MLflow UI      {env['MLFLOW_TRACKING_URI']}",
                    "  servers keep running; stop them with: .venv/bin/vsearch services down",
                ]
            )
        )

    run_guarded(body)


@app.command("serve")
def serve_command(
    host: str | None = typer.Option(None, "--host", help="default: serving.host"),
    port: int | None = typer.Option(None, "--port", help="default: serving.port"),
) -> None:
    """Run the BentoML service over HTTP (foreground; Ctrl+C stops it)."""
    from vsearch.serving.process import serve_foreground

    def body() -> None:
        s = get_settings().serving
        raise typer.Exit(
            serve_foreground(host or s.host, port or s.port, _State.params, Path.cwd())
        )

    run_guarded(body)


def _register_groups() -> None:
    """Attach sub-command groups that live next to the code they drive (imports stay light)."""
    from vsearch.index.cli import app as index_app
    from vsearch.services import app as services_app
    from vsearch.world.cli import app as world_app

    app.add_typer(world_app, name="world")
    app.add_typer(index_app, name="index")
    app.add_typer(services_app, name="services")
    from vsearch.evaluation.cli import evaluate_command
    from vsearch.mining.cli import mine_command
    from vsearch.registry.cli import promote_command, register_command
    from vsearch.search.cli import search_command
    from vsearch.training.cli import train_command
    from vsearch.validation.cli import validate_command

    app.command("validate")(validate_command)
    app.command("mine")(mine_command)
    app.command("train")(train_command)
    app.command("register")(register_command)
    app.command("promote")(promote_command)
    app.command("evaluate")(evaluate_command)
    app.command("search")(search_command)


_register_groups()
