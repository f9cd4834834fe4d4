"""Great Expectations validation of data drops: schema, keys, relations, clicks, images, volume.

Public API (imported lazily, so ``import vsearch.validation`` stays cheap and has no effects):

- :func:`validate_drop` → :class:`ValidationResult` (``success``, ``failures``, ``stats``,
  ``clean``, ``quarantined``, ``docs_path``)
- :func:`write_report`, :func:`load_history` (stats from a folder of reports),
  :func:`history_from_ledger` (the history the gates use: ingested drops of one kind),
  :func:`summarize`, :class:`DropStats`, :class:`Failure`

Which checks are critical and which quarantine rows is tabled in
:mod:`vsearch.validation.suites`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "validate_drop": "vsearch.validation.runner",
    "ValidationResult": "vsearch.validation.report",
    "DropStats": "vsearch.validation.report",
    "Failure": "vsearch.validation.report",
    "write_report": "vsearch.validation.report",
    "load_history": "vsearch.validation.report",
    "history_from_ledger": "vsearch.validation.report",
    "summarize": "vsearch.validation.report",
    "CHECKS": "vsearch.validation.suites",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vsearch.validation' has no attribute {name!r}")
