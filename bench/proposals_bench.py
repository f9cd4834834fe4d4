"""What candidate boxes cost the serving path: ``embed_images`` with and without proposals.

    python bench/proposals_bench.py                    # params.yaml's model and search knobs
    python bench/proposals_bench.py --repeats 20 search.proposals=10

The network is the one params.yaml describes, untrained (time does not depend on the weights).
Both variants run interleaved in one process on the same photos, so the printed ``ratio``
(with / without) stays meaningful on a busy machine; read it, not the milliseconds. Figures
(one JSON object per line): ``b1_ms`` (one photo, p50) and ``b32_ms`` (32 photos, p50), each for
``plain`` (detect → crop → embed), ``proposals`` (propose → NMS → crop of the best → embed) and
their ratio. Nothing here asserts anything.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import torch

from vsearch.settings import Settings, load_settings, with_overrides


def measure(settings: Settings, repeats: int) -> list[dict[str, Any]]:
    from vsearch.model.export import ProposalKnobs, embed_images
    from vsearch.model.net import NetConfig, VSearchNet

    torch.set_num_threads(settings.project.threads)
    torch.manual_seed(0)
    net = VSearchNet(NetConfig.from_settings(settings.model, ["a", "b", "c"])).eval()
    s = settings.search
    knobs = ProposalKnobs(max(s.proposals, 1), s.proposal_iou, s.proposal_min_score)
    side = settings.model.input_size
    rows = []
    for batch in (1, 32):
        photos = (torch.rand(batch, 3, side, side) * 255).to(torch.uint8)
        runs: dict[str, list[float]] = {"plain": [], "proposals": []}
        variants = {"plain": None, "proposals": knobs}
        for k in variants.values():  # warm-up
            embed_images(net, photos, batch_size=batch, proposals=k)
        for _ in range(repeats):
            for name, k in variants.items():
                t = time.perf_counter()
                embed_images(net, photos, batch_size=batch, proposals=k)
                runs[name].append(time.perf_counter() - t)
        plain = statistics.median(runs["plain"]) * 1e3
        with_props = statistics.median(runs["proposals"]) * 1e3
        rows.append(
            {
                "bench": "proposals",
                "name": f"b{batch}_ms",
                "plain": round(plain, 2),
                "proposals": round(with_props, 2),
                "ratio": round(with_props / plain, 3),
                "k": knobs.k,
                "threads": settings.project.threads,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="section.key=value settings overrides")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    settings = with_overrides(load_settings(args.params), args.overrides)
    for row in measure(settings, args.repeats):
        sys.stdout.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
