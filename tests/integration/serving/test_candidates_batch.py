"""A batch photo that lacks the candidate it asked for: its own 422, the others answered.

In-process over the served project (:func:`vsearch.serving.batch.run_batch` on a real
:class:`~vsearch.serving.state.ServingState`): how many candidates a photo has is known only
after the model ran, so the check cannot happen with the other field checks.
"""

from __future__ import annotations

import base64

import pytest

from vsearch.serving.batch import BatchQuery, run_batch
from vsearch.serving.state import ServingState

pytestmark = pytest.mark.integration


def test_a_photo_without_its_candidate_gets_its_own_422(served_project) -> None:
    s = served_project.settings.model_copy(deep=True)
    s.search.proposals = 3
    s.search.proposal_min_score = 1.0  # nothing reaches it: every photo keeps its best box only
    state = ServingState(s, served_project.root)
    try:
        state.reload()
        rows = served_project.catalog.iloc[[0, 5]]
        images = [
            base64.b64encode((served_project.drop / p).read_bytes()).decode() for p in rows["image"]
        ]
        queries = [
            BatchQuery(image=images[0], k=2),
            BatchQuery(image=images[1], k=2, candidate=1),
            BatchQuery(image=images[1], k=2, candidate=0),
        ]
        out = run_batch(state, queries)
    finally:
        state.close()
    assert out[1] == {
        "error": "no such candidate box: candidate 1 asked for, the photo has 1",
        "status": 422,
    }
    for answer in (out[0], out[2]):
        assert answer["candidate"] == 0 and len(answer["candidates"]) == 1
        assert answer["results"] and answer["box"] == answer["candidates"][0]["box"]
