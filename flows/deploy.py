"""The ``nightly`` deployment: a cron schedule on the Prefect server, served by this process.

``python -m flows.deploy`` registers the deployment (name, cron and timezone from
``params.yaml``'s ``schedule`` section) and then executes its scheduled and manually triggered
runs until stopped: Prefect's ``Flow.serve``, no work pool needed. A scheduled night takes the
new drops of ``ingest.incoming`` (never the demo world) and does nothing when nothing changed.
``vsearch deploy`` starts it in the background beside the MLflow and Prefect servers
(``vsearch services down`` stops it).
Against a production Prefect server, the same flow can instead be deployed to a work pool.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flows.nightly import nightly_flow
from vsearch.local.deployment import DEPLOYMENT
from vsearch.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo-root", default=".", help="the project (git + DVC) root")
    parser.add_argument("--params", default="params.yaml", help="params.yaml to read")
    args = parser.parse_args()
    root = Path(args.repo_root).resolve()
    s = load_settings(root / args.params).schedule
    nightly_flow.serve(
        name=DEPLOYMENT,
        cron=s.cron,
        parameters={"repo_root": str(root), "params": args.params},
        tags=["vsearch", "nightly"],
        description="new drops of ingest.incoming → validate → window → mine → train → "
        "evaluate → index → promotion (nothing new: nothing done)",
        limit=1,  # one night at a time: DVC and the index builder hold locks
    )


if __name__ == "__main__":
    main()
