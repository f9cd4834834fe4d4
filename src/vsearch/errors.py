"""Error types that map to the CLI's exit codes (docs/cli.md#exit-codes).

Why: scripts and CI branch on exit codes. ``BadInput`` (exit 2) means the *input* was wrong
(a malformed drop, a failed validation or gate) and the message says what to fix;
``Unavailable`` (exit 1) names a server that is down; anything else escaping to the CLI is a bug
(exit 1).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2


class BadInput(ValueError):
    """The caller's input was wrong; the message names what and what to do next (exit 2)."""


class TooLarge(BadInput):
    """The input is bigger than a configured limit (bytes, pixels): HTTP 413 at the service."""


class NoSuchCandidate(BadInput):
    """A chosen candidate box index past the photo's last one (known once the model ran).

    ``rows`` are the offending photos (positions in the call), ``counts`` their candidates.
    """

    def __init__(self, rows: list[int], chosen: list[int], counts: list[int]) -> None:
        self.rows, self.chosen, self.counts = rows, chosen, counts
        detail = "; ".join(
            f"image {r}: candidate {c} asked for, it has {m} (0..{m - 1})"
            for r, c, m in zip(rows, chosen, counts, strict=True)
        )
        super().__init__(f"no such candidate box: {detail}")


class GateFailed(BadInput):
    """A validation or promotion gate did not pass (exit 2); nothing downstream was changed."""


class Unavailable(RuntimeError):
    """A server or resource the command needs is not there (exit 1, not a bug): the message
    names it and how to bring it up."""
