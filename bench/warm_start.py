"""Warm start across nights: recall@10 after nights 1, 2, 3 when each night fine-tunes the
previous night's model, and (``--compare``) when each night trains from scratch.

    python -m bench.warm_start                         # 400 listings, 1800 queries, 3 nights
    python -m bench.warm_start --compare --steps 80 --set model.input_size=128

(run from the repository root.) One demo world is generated; its queries are split by the
held-out rule (``split.method: hash`` here, so a query is held out whatever window it is in)
and the rest, by time, into one window per night. Night ``k``'s drop holds the whole catalog,
that window's queries and impressions, and all held-out queries: it is mined and trained on
as the nightly would (held-out queries never mined nor trained on), with the same number of
steps every night (the same CPU budget). The warm chain starts night ``k`` from night
``k - 1``'s model (``--warm-from``, what the registry champion is when every night ships);
night 1 has nothing to start from. Every model is scored by the project's evaluation
(``score_model``) on the same held-out queries.

Output: one JSON object per (chain, night) on stdout, then a Markdown table on stderr.
``--chains warm`` and ``--chains scratch`` with one ``--workdir`` run the two chains as two
processes on the same world.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.click_runs import METRICS, bench_settings, make_world, mine, train_and_score
from vsearch.contracts import CATALOG, IMPRESSIONS, QUERIES, read_table, write_table
from vsearch.settings import Settings, load_settings
from vsearch.split import is_held_out


def night_drops(settings: Settings, drop: Path, root: Path, nights: int) -> list[Path]:
    """One drop per night: the catalog, that night's window of queries, the held-out ones."""
    catalog = read_table(drop, CATALOG)
    queries = read_table(drop, QUERIES)
    impressions = read_table(drop, IMPRESSIONS)
    held = is_held_out(queries, settings.split)
    train = queries[~held].sort_values(["ts", "query_id"])
    windows = np.array_split(np.arange(len(train)), nights)
    out = []
    for k, rows in enumerate(windows, start=1):
        ids = set(train["query_id"].iloc[rows]) | set(queries.loc[held, "query_id"])
        folder = root / f"night-{k}"
        out.append(folder)
        if (folder / "drop.json").is_file():  # a kept --workdir
            continue
        folder.mkdir(parents=True)
        os.symlink((drop / "images").resolve(), folder / "images")
        write_table(catalog, CATALOG, folder)
        write_table(queries[queries["query_id"].isin(ids)], QUERIES, folder)
        write_table(impressions[impressions["query_id"].isin(ids)], IMPRESSIONS, folder)
        (folder / "drop.json").write_text(json.dumps({"drop_id": f"night-{k}"}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--items", type=int, default=400, help="catalog listings of the world")
    ap.add_argument("--queries", type=int, default=1800, help="query photos over all nights")
    ap.add_argument("--nights", type=int, default=3)
    ap.add_argument("--world-seed", type=int, default=7)
    ap.add_argument("--steps", type=int, default=150, help="optimiser steps per night")
    ap.add_argument("--compare", action="store_true", help="also train every night from scratch")
    ap.add_argument(
        "--chains", nargs="*", default=None, help="warm and/or scratch (default: per --compare)"
    )
    ap.add_argument("--set", nargs="*", default=[], help="settings overrides key=value")
    ap.add_argument("--workdir", type=Path, default=None, help="keep files here (default: temp)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    base = bench_settings(load_settings(args.params), args.steps, ["split.method=hash", *args.set])
    began = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="warm-") as tmp:
        root = args.workdir or Path(tmp)
        drop, truth = make_world(base, root / "world", args.world_seed, args.items, args.queries)
        drops = night_drops(base, drop, root, args.nights)
        minings = [mine(base, d, truth, root / f"mining-{k}") for k, d in enumerate(drops, 1)]
        chains = args.chains or (("warm", "scratch") if args.compare else ("warm",))
        for chain in chains:
            previous: Path | None = None
            for k, (d, m) in enumerate(zip(drops, minings, strict=True), start=1):
                out = root / f"{chain}-{k}"
                row = {"chain": chain, "night": k}
                row.update(train_and_score(base, d, m, truth, out, warm_from=previous))
                print(json.dumps(row), flush=True)
                rows.append(row)
                previous = out / "model" if chain == "warm" else None
    table = pd.DataFrame(rows).pivot(index="night", columns="chain", values="click_recall@10")
    lines = ["| night | " + " | ".join(f"click_recall@10 {c}" for c in table.columns) + " |"]
    lines.append("|" + "---|" * (len(table.columns) + 1))
    for night, r in table.iterrows():
        lines.append(f"| {night} | " + " | ".join(f"{v:.3f}" for v in r) + " |")
    print("\n".join(lines), file=sys.stderr)
    for r in rows:
        print({k: r[k] for k in ("chain", "night", *METRICS, "warm_start")}, file=sys.stderr)
    print(f"total {time.perf_counter() - began:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
