"""``vsearch world``: generate a demo-world drop; ``vsearch world preview``: look at one.

Why a callback with ``invoke_without_command``: the documented contract is
``vsearch world --out DIR`` (no sub-command word) next to ``vsearch world preview DIR``, so the
group itself generates when no sub-command follows. Heavy imports stay inside the bodies.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from vsearch.cli_support import emit, get_settings, run_guarded

app = typer.Typer(
    help="The procedural demo shop: products, sellers, real-shot queries and click logs.",
    no_args_is_help=False,
    add_completion=False,
)


@app.callback(invoke_without_command=True)
def world(
    ctx: typer.Context,
    out: Path | None = typer.Option(None, "--out", help="drop folder to create (empty or new)"),
    truth_out: Path | None = typer.Option(
        None, "--truth-out", help="ground-truth folder (default: <out>.truth, beside the drop)"
    ),
    items: int | None = typer.Option(
        None, "--items", help="catalog listings (default: world.items)"
    ),
    queries: int | None = typer.Option(
        None, "--queries", help="query photos (default: world.queries)"
    ),
    seed: int | None = typer.Option(None, "--seed", help="world seed (default: project.seed)"),
    workers: int | None = typer.Option(
        None, "--workers", help="render processes (default: world.workers)"
    ),
    force: bool = typer.Option(False, "--force", help="replace a non-empty --out / --truth-out"),
    json_out: bool = typer.Option(False, "--json", help="print the summary as JSON on stdout"),
) -> None:
    """Generate a demo-world drop (contract format) and its separate ground truth."""
    if ctx.invoked_subcommand is not None:
        return

    def body() -> None:
        from vsearch.errors import BadInput

        if out is None:
            raise BadInput("vsearch world needs --out DIR (or a sub-command: preview)")
        settings = get_settings()
        from vsearch.world.generate import generate_world

        with _Progress(enabled=not json_out) as on_progress:
            summary = generate_world(
                settings.world,
                out,
                truth_out,
                seed=settings.project.seed if seed is None else seed,
                items=items,
                queries=queries,
                workers=workers,
                force=force,
                on_progress=on_progress,
            )
        emit(summary.to_dict(), as_json=json_out)

    run_guarded(body)


@app.command("preview")
def preview(
    drop: Path = typer.Argument(..., help="drop folder (contract format)"),
    truth: Path | None = typer.Option(
        None, "--truth", help="ground-truth folder (default: <drop>.truth if it exists)"
    ),
    out: Path = typer.Option(..., "--out", help="PNG contact sheet to write"),
) -> None:
    """Write a contact sheet: products, their listings and queries with true boxes."""

    def body() -> None:
        from vsearch.errors import BadInput
        from vsearch.world.generate import default_truth_dir
        from vsearch.world.preview import render_preview

        if not drop.is_dir():
            raise BadInput(f"{drop} is not a folder; pass a drop made by `vsearch world --out`")
        sibling = default_truth_dir(drop)
        chosen = truth if truth is not None else (sibling if sibling.is_dir() else None)
        if chosen is not None and not chosen.is_dir():
            raise BadInput(f"--truth {chosen} is not a folder")
        path = render_preview(drop, chosen, out)
        typer.echo(f"wrote {path}")

    run_guarded(body)


class _Progress:
    """A rich progress bar fed by ``generate_world``'s callback (off for ``--json``)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar = None
        self._task = None

    def __enter__(self) -> Callable[[int, int], None] | None:
        if not self.enabled:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._bar = Progress(
            "rendering images",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("images", total=None)
        return self._update

    def _update(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
