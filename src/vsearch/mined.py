"""What the mining stage writes: file names of its output folder, shared by every reader.

Why a module of its own: training, search (product groups), evaluation and the release read
mining's outputs; the names live here once, apart from the mining code, so a reader never has
to import the mining stage (and its dependencies) to find a file.
"""

from __future__ import annotations

PAIRS_FILE = "pairs.parquet"  # weighted (query, item) positives and skip-above negatives
VIRTUAL_IDS_FILE = "virtual_ids.parquet"  # item_id -> virtual_id (co-click clusters)
QUERY_VIRTUAL_IDS_FILE = "query_virtual_ids.parquet"  # query_id -> virtual_id of its click
EDGES_FILE = "coclick_edges.parquet"  # the co-click graph's weighted edges
REPORT_FILE = "mining_report.json"  # counts and (with demo truth) purity/coverage
