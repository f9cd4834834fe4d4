"""The ``nightly`` and weekly ``baselines`` deployments: cron schedules on the Prefect server,
served by this process.

``python -m flows.deploy`` registers both deployments (names and crons from ``params.yaml``'s
``schedule`` section) and then executes their scheduled and manually triggered runs until
stopped: Prefect's ``serve``, no work pool needed; one run at a time (both hold DVC's lock).
The baselines (``flows/baselines.py``) are off the nightly path: weekly, or when ``vsearch
demo`` asks for them after the service is up. A scheduled night takes the
new drops of ``ingest.incoming`` (never the demo world) and does nothing when nothing changed.
``vsearch deploy`` starts it in the background beside the MLflow and Prefect servers
(``vsearch services down`` stops it).
Against a production Prefect server, the same flow can instead be deployed to a work pool.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import serve

from flows.baselines import baselines_flow
from flows.nightly import nightly_flow
from vsearch.local.deployment import BASELINES_DEPLOYMENT, DEPLOYMENT
from vsearch.settings import load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo-root", default=".", help="the project (git + DVC) root")
    parser.add_argument("--params", default="params.yaml", help="params.yaml to read")
    args = parser.parse_args()
    root = Path(args.repo_root).resolve()
    s = load_settings(root / args.params).schedule
    nightly = nightly_flow.to_deployment(
        name=DEPLOYMENT,
        cron=s.cron,
        parameters={"repo_root": str(root), "params": args.params},
        tags=["vsearch", "nightly"],
        description="new drops of ingest.incoming → validate → window → mine → train → "
        "evaluate → index → promotion (nothing new: nothing done)",
    )
    baselines = baselines_flow.to_deployment(
        name=BASELINES_DEPLOYMENT,
        cron=s.baselines_cron,
        parameters={"repo_root": str(root)},
        tags=["vsearch", "baselines"],
        description="comparison baselines off the nightly path: mine → train_oracle → "
        "train_category → baselines (figures the evaluation report shows)",
    )
    serve(nightly, baselines, limit=1)  # one run at a time: DVC and the index builder lock


if __name__ == "__main__":
    main()
