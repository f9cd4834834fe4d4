"""Shared plumbing for CLI command groups: settings once per invocation, exit codes, output.

Why a module of its own: command groups live beside the code they drive (``world/cli.py``,
``index/cli.py``, ...) and all need the same guard and settings; importing them from
``vsearch.cli`` would be circular.
"""

from __future__ import annotations

import errno
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer

from vsearch.errors import EXIT_BAD_INPUT, EXIT_ERROR, BadInput, Unavailable
from vsearch.settings import DEFAULT_PARAMS, Settings, SettingsError, load_settings

log = logging.getLogger("vsearch")
T = TypeVar("T")


class _State:
    params: Path = DEFAULT_PARAMS
    settings: Settings | None = None


def configure(params: Path, verbose: bool = False) -> None:
    """Set where settings come from and log to stderr (stdout is for ``--json`` output)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    _State.params = params
    _State.settings = None


def get_settings() -> Settings:
    """Settings for this invocation, loaded once from ``--params``."""
    if _State.settings is None:
        _State.settings = load_settings(_State.params)
    return _State.settings


DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def run_guarded(fn: Callable[[], T]) -> T:
    """Run a command body, mapping errors to the documented exit codes with a clear message."""
    try:
        return fn()
    except (BadInput, SettingsError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except Unavailable as exc:  # a server that is down: not a bug, say which and what to do
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            return _unexpected(exc)
        # Not a bug, and not the input: the environment. Writers publish by rename only when
        # complete and remove their staging on failure, so nothing half-written stays.
        typer.echo(
            f"error: the disk is full ({exc}): free space (or point the output elsewhere) and "
            "run the command again; nothing was published",
            err=True,
        )
        raise typer.Exit(EXIT_ERROR) from None
    except Exception as exc:
        return _unexpected(exc)


def _unexpected(exc: Exception) -> NoReturn:
    """An unexpected error is a bug: say so, keep the traceback in the log."""
    log.exception("unexpected error")
    typer.echo(f"unexpected error ({type(exc).__name__}): {exc}", err=True)
    raise typer.Exit(EXIT_ERROR) from None


def emit(payload: Any, as_json: bool) -> None:
    """Machine-readable JSON on stdout with ``--json``; otherwise pretty JSON for people."""
    if as_json:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        from rich import print_json

        print_json(data=json.loads(json.dumps(payload, default=str)))
