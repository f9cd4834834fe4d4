"""What the mining stage writes: its output folder's file names, their writer and their readers.

Why a module of its own: training, search (product groups), evaluation and the promotion read
mining's outputs; the names, the one writer and the readers live here once, apart from the
mining code, so a reader never imports the mining stage (and its dependencies) to find a file,
and every reader agrees with the writer on names, columns and what a missing file means.

The folder holds:

* :data:`PAIRS_FILE`: weighted (query, item) positives and skip-above negatives
  (``query_id, item_id, label, kind, weight, ...``), optional for readers;
* :data:`VIRTUAL_IDS_FILE`: ``item_id, virtual_id, cluster_size`` per clicked listing, the one
  output every reader needs;
* :data:`QUERY_VIRTUAL_IDS_FILE`: ``query_id, item_id, virtual_id, cluster_size`` per clicked
  query (its first click), optional for readers;
* :data:`EDGES_FILE`: the co-click graph's weighted edges;
* :data:`REPORT_FILE`: counts and (with demo truth) purity/coverage, as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from vsearch.fsio import atomic_path, atomic_write_json

PAIRS_FILE = "pairs.parquet"  # weighted (query, item) positives and skip-above negatives
VIRTUAL_IDS_FILE = "virtual_ids.parquet"  # item_id -> virtual_id (co-click clusters)
QUERY_VIRTUAL_IDS_FILE = "query_virtual_ids.parquet"  # query_id -> virtual_id of its click
EDGES_FILE = "coclick_edges.parquet"  # the co-click graph's weighted edges
REPORT_FILE = "mining_report.json"  # counts and (with demo truth) purity/coverage

#: Columns of the edges table, in order (written by vsearch.mining.graph).
EDGE_COLUMNS = ("item_a", "item_b", "coclicks", "long_coclicks", "weight")
# Values of the pairs table's ``label`` and ``kind`` columns (written by vsearch.mining.pairs).
POSITIVE, NEGATIVE = 1, 0
KIND_FIRST, KIND_SWITCH, KIND_SKIP_ABOVE = "first", "switch", "skip_above"


def write_outputs(
    out: Path,
    *,
    pairs: pd.DataFrame,
    virtual_ids: pd.DataFrame,
    query_virtual_ids: pd.DataFrame,
    edges: pd.DataFrame,
    report: dict[str, Any],
) -> dict[str, str]:
    """Write the mining outputs into ``out`` (each file atomically); returns name -> path.

    Why atomic: DVC, training and the service may open a file at any moment; a crash never
    leaves half a table under its final name.
    """
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        PAIRS_FILE: pairs,
        VIRTUAL_IDS_FILE: virtual_ids,
        QUERY_VIRTUAL_IDS_FILE: query_virtual_ids,
        EDGES_FILE: edges,
    }
    written = {}
    for name, frame in tables.items():
        with atomic_path(out / name) as tmp:
            frame.to_parquet(tmp, index=False)
        written[name] = str(out / name)
    atomic_write_json(out / REPORT_FILE, report)
    written[REPORT_FILE] = str(out / REPORT_FILE)
    return written


def has_virtual_ids(mining_dir: Path) -> bool:
    """Whether ``mining_dir`` holds the virtual IDs (the output every reader needs)."""
    return (Path(mining_dir) / VIRTUAL_IDS_FILE).is_file()


def read_virtual_ids(mining_dir: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """``item_id, virtual_id, cluster_size`` of every clicked listing (or ``columns`` of them).

    Raises:
        FileNotFoundError: the folder has no virtual IDs (run ``vsearch mine`` first).
    """
    return pd.read_parquet(
        Path(mining_dir) / VIRTUAL_IDS_FILE, columns=list(columns) if columns else None
    )


def read_query_virtual_ids(
    mining_dir: Path, columns: Sequence[str] | None = None
) -> pd.DataFrame | None:
    """``query_id, item_id, virtual_id, cluster_size`` per clicked query; ``None`` when absent."""
    path = Path(mining_dir) / QUERY_VIRTUAL_IDS_FILE
    if not path.is_file():
        return None
    return pd.read_parquet(path, columns=list(columns) if columns else None)


def read_pairs(mining_dir: Path) -> pd.DataFrame | None:
    """The weighted (query, item) pairs; ``None`` when the folder has none."""
    path = Path(mining_dir) / PAIRS_FILE
    return pd.read_parquet(path) if path.is_file() else None


def read_report(mining_dir: Path) -> dict[str, Any]:
    """The mining report (counts, weights, propensities, settings, quality with truth).

    Raises:
        FileNotFoundError: the folder has no report.
    """
    return json.loads((Path(mining_dir) / REPORT_FILE).read_text())
