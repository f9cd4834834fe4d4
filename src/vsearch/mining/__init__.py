"""Click mining: weighted (query, item) pairs, the co-click graph and virtual IDs.

The stage between validated data and training (docs/learning.md#mining). Identity is learnt
from clicks alone: a query's clicks are positives, items skipped above a click are negatives,
both weighted for position bias, and listings co-clicked for the same photo are clustered into
*virtual IDs* (pseudo product identities) that training can use as classes.

Modules, one job each: :mod:`.propensity` (position bias), :mod:`.pairs` (positives and
negatives), :mod:`.graph` (co-click graph), :mod:`.virtual_ids` (clustering),
:mod:`.quality` (report-only comparison with demo ground truth), :mod:`.pipeline` (``mine``,
pure), :mod:`.stage` (``mine_drop``: folders in, files out, a report back) and :mod:`.cli`
(``vsearch mine``). The output folder's names, writer and readers are
:mod:`vsearch.mined`. Importing this package has no side effects.
"""

from vsearch.mining.graph import build_coclick_graph, coclick_edges
from vsearch.mining.pairs import drop_false_negatives, mine_pairs, triplets
from vsearch.mining.pipeline import MiningResult, mine
from vsearch.mining.propensity import estimate_propensity
from vsearch.mining.quality import pair_quality, virtual_id_quality
from vsearch.mining.virtual_ids import assign_virtual_ids, query_virtual_ids

__all__ = [
    "MiningResult",
    "assign_virtual_ids",
    "build_coclick_graph",
    "coclick_edges",
    "drop_false_negatives",
    "estimate_propensity",
    "mine",
    "mine_pairs",
    "pair_quality",
    "query_virtual_ids",
    "triplets",
    "virtual_id_quality",
]
