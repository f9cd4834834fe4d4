"""Fuzz the search service through its own OpenAPI schema (schemathesis): every operation, the
admin ones with and without the token; count requests, 5xx answers and schema violations.

    python bench/fuzz.py                                  # tiny project, its service, 200/op
    python bench/fuzz.py --max-examples 20                # shorter
    python bench/fuzz.py --url http://127.0.0.1:3000      # a running service
                                                          # (token from VSEARCH_ADMIN_TOKEN)

What runs: without ``--url``, a project in a temporary folder (a small generated world, an
untrained model of the ``params.yaml`` architecture and a release of its catalog, built as
``service_bench.py`` builds its demo scale) served by ``bentoml serve`` with an admin token.
The schema is read from the service (``/docs.json``, :mod:`vsearch.serving.openapi`); for each
operation hypothesis draws ``--max-examples`` requests in each generation mode (positive:
what the schema allows; negative: what it forbids), sent with the admin token and without
one (operations without security: once). Each answer goes through schemathesis' checks:
``not_a_server_error``, ``status_code_conformance``, ``content_type_conformance``,
``response_headers_conformance``, ``response_schema_conformance``; an operation that needs the
token must refuse every request without it (401/403/429, counted as ``auth_leaks`` otherwise).

Figures (JSON lines, docs/contributing.md#measuring): a header, one ``fuzz_operation`` line
per operation and auth mode (requests, statuses, 5xx, violations), and ``fuzz_total``
(requests, ``status_5xx``, ``violations``, ``auth_leaks``, the first failure messages). Exit
code 1 when any of the three is non-zero, so ``make bench`` shows it; nothing is timed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("fuzz")

TOKEN_ENV = "VSEARCH_ADMIN_TOKEN"
BENCH_TOKEN = "fuzz-admin-token"
DEFAULT_EXAMPLES = 200  # per operation, auth mode and generation mode (make bench)
WORLD = {"items": 60, "queries": 24}  # the served project: small, it is the HTTP layer we test
REQUEST_TIMEOUT_S = 60.0
KEPT_FAILURES = 20  # failure messages kept in the summary line
REFUSED_BEFORE_AUTH = frozenset({400, 401, 403, 413, 429})


@dataclass
class Tally:
    """What one operation got, in one auth mode."""

    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    violations: int = 0
    auth_leaks: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def status_5xx(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)


def checks() -> list[Any]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]


def leaked(path_template: str, response: Any) -> bool:
    """An admin request without a token that reached its handler. Refusals that come before
    the token check are fine: 401/403, a malformed request (400: control characters in the
    path, a bad Content-Length), a body over the limit (413), the admin rate limit (429: it
    counts every admin call of a caller, token or not, so guessing is throttled too), and the
    JSON 404 of a drawn
    path parameter (``..``) that moved the URL off the admin route."""
    if response.status_code in REFUSED_BEFORE_AUTH:
        return False
    sent = urlsplit(response.request.url).path
    return not (response.status_code == 404 and not sent.startswith(path_template.split("{")[0]))


def fuzz_operation(
    operation: Any, url: str, headers: dict[str, str], needs_token: bool, args: argparse.Namespace
) -> Tally:
    """Send ``args.max_examples`` drawn requests per generation mode; tally the answers."""
    import requests
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from schemathesis import GenerationMode
    from schemathesis.core.failures import FailureGroup

    tally = Tally()
    session = requests.Session()
    chosen = checks()

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @settings(
            max_examples=args.max_examples,
            deadline=None,
            database=None,
            derandomize=args.seed is not None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,  # stdout carries the JSON lines only
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def one(case: Any) -> None:
            response = case.call(
                base_url=url, session=session, headers=headers, timeout=REQUEST_TIMEOUT_S
            )
            tally.requests += 1
            tally.statuses[response.status_code] += 1
            if needs_token and not headers and leaked(operation.path, response):
                tally.auth_leaks += 1
                tally.failures.append(
                    f"{response.request.method} {response.request.url}: answered "
                    f"{response.status_code} without a token"
                )
            try:
                case.validate_response(response, checks=chosen, headers=headers)
            except FailureGroup as group:
                tally.violations += len(group.exceptions)
                for failure in group.exceptions:
                    text = f"{failure.title}: {failure.message}".strip()[:400]
                    tally.failures.append(
                        f"{response.request.method} {response.request.url}: "
                        f"{response.status_code} {text}"
                    )

        try:
            one()
        except Exception as exc:  # hypothesis gave up (e.g. an unsatisfiable negative schema)
            if "Unsatisfiable" not in type(exc).__name__:
                raise
            log.info("%s: no %s examples (%s)", operation.label, mode.value, exc)
    return tally


def fuzz(url: str, token: str, args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """One ``fuzz_operation`` row per operation and auth mode, then ``fuzz_total``."""
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{url}/docs.json", timeout=REQUEST_TIMEOUT_S)
    total = Tally()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        needs_token = bool(operation.definition.raw.get("security"))
        modes = {"token": {"Authorization": f"Bearer {token}"}, "none": {}}
        if not needs_token:
            modes = {"none": {}}
        for auth, headers in modes.items():
            tally = fuzz_operation(operation, url, headers, needs_token, args)
            total.requests += tally.requests
            total.statuses.update(tally.statuses)
            total.violations += tally.violations
            total.auth_leaks += tally.auth_leaks
            total.failures += tally.failures[: KEPT_FAILURES - len(total.failures)]
            yield {
                "name": "fuzz_operation",
                "operation": operation.label,
                "auth": auth,
                "requests": tally.requests,
                "status_5xx": tally.status_5xx,
                "violations": tally.violations,
                "auth_leaks": tally.auth_leaks,
                "statuses": {str(s): n for s, n in sorted(tally.statuses.items())},
                "unit": "requests",
            }
    yield {
        "name": "fuzz_total",
        "operations": operations,
        "requests": total.requests,
        "status_5xx": total.status_5xx,
        "violations": total.violations,
        "auth_leaks": total.auth_leaks,
        "statuses": {str(s): n for s, n in sorted(total.statuses.items())},
        "failures": total.failures,
        "unit": "requests",
    }


@contextlib.contextmanager
def served_project(args: argparse.Namespace) -> Iterator[str]:
    """A tiny project (world, untrained model, release) served with :data:`BENCH_TOKEN`."""
    import service_bench  # the bench folder is on sys.path when this script runs

    from vsearch.settings import load_settings

    params_src = Path(args.params).resolve()
    settings = load_settings(params_src)
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        base = Path(tmp)
        ns = argparse.Namespace(drop=None, model=None, **WORLD)
        scale, *_ = service_bench.demo_scale(settings, ns, base, params_src)
        with service_bench.serve_scale(scale, base / "service.log", BENCH_TOKEN) as (url, _):
            yield url


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--url", default=None, help="fuzz this running service instead")
    ap.add_argument("--max-examples", type=int, default=DEFAULT_EXAMPLES)
    ap.add_argument("--seed", type=int, default=None, help="derandomize (reproducible draws)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.url:
            url, token = args.url.rstrip("/"), os.environ.get(TOKEN_ENV, "")
        else:
            url, token = stack.enter_context(served_project(args)), BENCH_TOKEN
        header = {"bench": "fuzz", "url": url, "max_examples": args.max_examples}
        sys.stdout.write(json.dumps({**header, "cpu_count": os.cpu_count()}) + "\n")
        last: dict[str, Any] = {}
        for row in fuzz(url, token, args):
            sys.stdout.write(json.dumps(row) + "\n")
            sys.stdout.flush()
            last = row
    bad = last.get("status_5xx", 1) + last.get("violations", 1) + last.get("auth_leaks", 1)
    for failure in last.get("failures", []):
        sys.stderr.write(f"FAIL {failure}\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
