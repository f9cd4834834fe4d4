"""Generate a whole demo-world drop: catalog, queries, impressions, images, and its truth.

Why one orchestrating function: ``vsearch world``, the tests' fixtures and the benchmark all
need the same thing, a drop in the contract format (``vsearch.contracts``) that validation,
ingest, mining and training consume exactly like a real shop's export, plus the ground truth
that only evaluation may read, written to a *separate* folder.

Determinism: the same seed and settings give byte-identical files whatever the number of
worker processes. Every random decision draws from a generator derived from (seed, stream),
and every image from (seed, stream, image index). The one outside input is the clock, used only
to keep events out of the future: if ``world.start + world.days`` is not at least a day in the
past, the window is shifted back by whole days (and a warning logged), so a drop generated
after the configured window, the normal case, never depends on when it was made.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from vsearch.contracts import (
    CATALOG,
    DROP_MANIFEST,
    IMAGES_DIR,
    IMPRESSIONS,
    ITEM_TRUTH,
    PRODUCTS_TRUTH,
    QUERIES,
    QUERY_TRUTH,
    write_table,
)
from vsearch.errors import BadInput
from vsearch.settings import WorldSettings
from vsearch.world.catalog import (
    US_PER_S,
    Seller,
    make_listings,
    make_sellers,
    product_popularity,
    seller_counts,
)
from vsearch.world.clicks import ctr, simulate_impressions
from vsearch.world.parallel import Progress, render_images
from vsearch.world.products import CatalogProduct, make_products
from vsearch.world.render import QueryJob, RenderContext, StudioJob
from vsearch.world.shapes import CATEGORIES
from vsearch.world.traffic import plan_queries

log = logging.getLogger(__name__)

SOURCE = "vsearch world"
TRUTH_MANIFEST = "truth.json"
CATALOG_IMAGES = f"{IMAGES_DIR}/catalog"
QUERY_IMAGES = f"{IMAGES_DIR}/queries"
RUNTIME_ONLY = ("workers", "chunk_size")  # settings that change speed, never the output
WINDOW_SAFETY = timedelta(days=1)  # the event window ends at least this long before "now"
# Independent random streams of the main process (images use their own, see render.py).
(
    STREAM_COUNTS,
    STREAM_PRODUCTS,
    STREAM_POPULARITY,
    STREAM_SELLERS,
    STREAM_LISTINGS,
    STREAM_QUERIES,
    STREAM_CLICKS,
) = range(1, 8)


@dataclass(frozen=True)
class WorldSummary:
    """What was generated, where, and how long it took."""

    drop_id: str
    out: Path
    truth_out: Path
    items: int
    products: int
    lookalike_products: int
    sellers: int
    queries: int
    impressions: int
    clicks: int
    ctr: float
    images: int
    window_start: str
    window_end: str
    seconds: float

    def to_dict(self) -> dict:
        """JSON-ready form (paths as strings)."""
        d = asdict(self)
        d["out"], d["truth_out"] = str(self.out), str(self.truth_out)
        return d


def default_truth_dir(out: Path) -> Path:
    """Where the truth goes unless told: a sibling ``<out>.truth`` (never inside the drop)."""
    return out.with_name(out.name + ".truth")


def parse_utc(text: str) -> datetime:
    """An ISO-8601 time as an aware UTC datetime (naive times are taken as UTC)."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(
            f"world.start {text!r} is not an ISO-8601 time (e.g. 2026-10-01T00:00:00Z)"
        ) from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def event_window(start: str, days: int, now: datetime) -> tuple[datetime, datetime]:
    """The configured ``[start, start + days)`` window, shifted back only if it is not past.

    Events may not lie in the future (validation rejects them), so when the window ends later
    than ``now - WINDOW_SAFETY`` it moves back by the fewest whole days that fix it.
    """
    t0 = parse_utc(start)
    t1 = t0 + timedelta(days=days)
    latest = now.astimezone(UTC) - WINDOW_SAFETY
    if t1 > latest:
        shift = timedelta(days=math.ceil((t1 - latest) / timedelta(days=1)))
        log.warning(
            "world.start + world.days (%s) is not in the past; events shifted back %s days "
            "(set world.start earlier for drops that do not depend on the clock)",
            t1.isoformat(),
            shift.days,
        )
        t0, t1 = t0 - shift, t1 - shift
    return t0, t1


def _us(t: datetime) -> int:
    return int(t.timestamp()) * US_PER_S + t.microsecond


def _ts(us: pd.Series | np.ndarray) -> pd.Series:
    return pd.Series(pd.to_datetime(np.asarray(us, dtype=np.int64), unit="us", utc=True))


def _drop_id(settings: WorldSettings, seed: int, items: int, queries: int, t0: datetime) -> str:
    spec = {
        "world": settings.model_dump(mode="json", exclude=set(RUNTIME_ONLY)),
        "seed": seed,
        "items": items,
        "queries": queries,
        "window_start": t0.isoformat(),
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    return f"world-s{seed}-{digest}"


def _is_dangerous(path: Path) -> bool:
    """Folders ``--force`` must never delete: the root, home, the cwd and its ancestors."""
    p = path.resolve()
    cwd = Path.cwd().resolve()
    return p == Path(p.anchor) or p == Path.home().resolve() or p == cwd or p in cwd.parents


def _check_target(path: Path, what: str, force: bool) -> None:
    if path.exists() and not path.is_dir():
        raise BadInput(f"{what} {path} exists and is not a folder; choose another path")
    if path.is_dir() and any(path.iterdir()):
        if not force:
            raise BadInput(
                f"{what} {path} exists and is not empty; choose a new folder or pass --force "
                "to replace it"
            )
        if _is_dangerous(path):
            raise BadInput(f"refusing to replace {path} (--force never deletes this folder)")


def _within(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def _publish(stage: Path, target: Path) -> None:
    """Move a finished staging folder into place (replacing an empty or forced target)."""
    if target.is_dir():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(stage, target)


def _stage_dir(target: Path) -> Path:
    stage = target.with_name(f".{target.name}.partial")
    if stage.exists():
        shutil.rmtree(stage)  # left over from an interrupted run of ours
    stage.mkdir(parents=True)
    return stage


@dataclass(frozen=True)
class WorldPlan:
    """Everything about a world except its pixels: products, sellers and the three logs."""

    products: list[CatalogProduct]
    sellers: list[Seller]
    listings: pd.DataFrame  # catalog rows + sku, seller index, listed_at_us
    queries: pd.DataFrame  # query rows + sku, category, distractor_sku, ts_us
    impressions: pd.DataFrame  # impression rows with ts_us


def plan_world(
    settings: WorldSettings, seed: int, n_items: int, n_queries: int, window_us: tuple[int, int]
) -> WorldPlan:
    """Draw products, sellers, listings, queries and clicks (no files, no images).

    Each step has its own random stream, so changing e.g. the click model leaves the catalog
    and the photos untouched.
    """

    def rng(stream: int) -> np.random.Generator:
        return np.random.default_rng([seed, stream])

    categories = CATEGORIES[: settings.categories]
    hi = min(settings.max_sellers, settings.n_sellers)
    try:
        counts = seller_counts(n_items, settings.min_sellers, hi, rng(STREAM_COUNTS))
    except ValueError as exc:
        raise BadInput(f"--items {n_items}: {exc}") from None
    products = make_products(
        len(counts), categories, settings.lookalike_fraction, rng(STREAM_PRODUCTS)
    )
    popularity = product_popularity(
        len(products), settings.query_popularity, rng(STREAM_POPULARITY)
    )
    sellers = make_sellers(settings.n_sellers, rng(STREAM_SELLERS))
    listings = make_listings(
        products, counts, sellers, popularity, window_us[0], rng(STREAM_LISTINGS)
    )
    queries = plan_queries(
        n_queries,
        products,
        popularity,
        categories,
        window_us,
        settings.distractor_prob,
        settings.clicks,
        rng(STREAM_QUERIES),
    )
    impressions = simulate_impressions(
        queries, listings, products, settings.clicks, rng(STREAM_CLICKS)
    )
    listings["image"] = [f"{CATALOG_IMAGES}/{i}.jpg" for i in listings["item_id"]]
    queries["image"] = [f"{QUERY_IMAGES}/{q}.jpg" for q in queries["query_id"]]
    return WorldPlan(products, sellers, listings, queries, impressions)


def render_jobs(plan: WorldPlan) -> list[StudioJob | QueryJob]:
    """One job per image, grouped by product so a worker's sprite cache keeps hitting."""
    by_sku = {cp.sku: cp.product for cp in plan.products}
    keyed: list[tuple[str, int, StudioJob | QueryJob]] = []
    for i, row in enumerate(plan.listings.itertuples(index=False)):
        style = plan.sellers[row.seller].style
        keyed.append((row.sku, i, StudioJob(i, row.image, by_sku[row.sku], style)))
    offset = len(plan.listings)
    for q, row in enumerate(plan.queries.itertuples(index=False)):
        d_sku = row.distractor_sku  # a missing value reads back as NaN, not None
        distractor = by_sku[d_sku] if isinstance(d_sku, str) else None
        keyed.append((row.sku, offset + q, QueryJob(q, row.image, by_sku[row.sku], distractor)))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [job for _, _, job in keyed]


def _check_arguments(
    settings: WorldSettings, n_items: int, n_queries: int, seed: int, n_workers: int
) -> None:
    if n_items < max(1, settings.min_sellers):
        raise BadInput(f"--items {n_items}: need at least world.min_sellers={settings.min_sellers}")
    if n_queries < 1:
        raise BadInput(f"--queries {n_queries}: need at least 1")
    if seed < 0:
        raise BadInput(f"--seed {seed}: must be >= 0")
    if n_workers < 1:
        raise BadInput(f"workers {n_workers}: must be >= 1")
    if settings.n_sellers < settings.min_sellers:
        raise BadInput(
            f"world.n_sellers={settings.n_sellers} is below world.min_sellers="
            f"{settings.min_sellers}: products could not find enough sellers"
        )


def generate_world(
    settings: WorldSettings,
    out: Path,
    truth_out: Path | None = None,
    *,
    seed: int,
    items: int | None = None,
    queries: int | None = None,
    workers: int | None = None,
    force: bool = False,
    on_progress: Progress | None = None,
    now: datetime | None = None,
) -> WorldSummary:
    """Generate a demo-world drop in ``out`` and its ground truth in ``truth_out``.

    Files are written to hidden staging folders beside the targets and moved into place only
    when complete, so an interrupted run never leaves a half drop behind. With ``workers > 1``
    images render in spawned processes: a script calling this needs the usual
    ``if __name__ == "__main__":`` guard.

    Args:
        settings: the ``world`` section of params.yaml.
        out: the drop folder (must be absent or empty unless ``force``).
        truth_out: the truth folder; default :func:`default_truth_dir` of ``out``.
        seed: the world's seed; same seed and settings give byte-identical files.
        items: catalog listings (default ``settings.items``); the product count follows.
        queries: query photos (default ``settings.queries``).
        workers: render processes (default ``settings.workers``); never changes the output.
        force: replace non-empty ``out``/``truth_out``.
        on_progress: called with (images done, images total) while rendering.
        now: the clock, for tests; only used to keep events out of the future.

    Raises:
        BadInput: bad sizes, occupied output folders, truth inside the drop.
    """
    started = time.perf_counter()
    n_items = settings.items if items is None else items
    n_queries = settings.queries if queries is None else queries
    n_workers = settings.workers if workers is None else workers
    truth_out = default_truth_dir(out) if truth_out is None else truth_out
    _check_arguments(settings, n_items, n_queries, seed, n_workers)
    if _within(truth_out, out) or _within(out, truth_out):
        raise BadInput(
            f"truth folder {truth_out} must not be inside the drop {out} (or vice versa)"
        )
    _check_target(out, "--out", force)
    _check_target(truth_out, "--truth-out", force)

    t0, t1 = event_window(settings.start, settings.days, now or datetime.now(UTC))
    drop_id = _drop_id(settings, seed, n_items, n_queries, t0)
    plan = plan_world(settings, seed, n_items, n_queries, (_us(t0), _us(t1)))
    imp = plan.impressions
    log.info(
        "world %s: %d products, %d listings, %d queries, %d impressions (CTR %.3f)",
        drop_id,
        len(plan.products),
        len(plan.listings),
        len(plan.queries),
        len(imp),
        ctr(imp),
    )

    stage, truth_stage = _stage_dir(out), _stage_dir(truth_out)
    try:
        (stage / CATALOG_IMAGES).mkdir(parents=True)
        (stage / QUERY_IMAGES).mkdir(parents=True)
        jobs = render_jobs(plan)
        ctx = RenderContext(
            root=stage,
            seed=seed,
            size=settings.image_size,
            studio_quality=settings.studio_jpeg_quality,
            query_quality=settings.query_jpeg_quality,
        )
        render_start = time.perf_counter()
        boxes = render_images(jobs, ctx, n_workers, settings.chunk_size, on_progress)
        log.info(
            "rendered %d images in %.1f s with up to %d worker(s)",
            len(jobs),
            time.perf_counter() - render_start,
            n_workers,
        )
        _write_drop(stage, drop_id, seed, plan, (t0, t1))
        _write_truth(truth_stage, drop_id, seed, settings, plan, boxes)
        _publish(stage, out)
        _publish(truth_stage, truth_out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        shutil.rmtree(truth_stage, ignore_errors=True)
        raise
    group_sizes = Counter(cp.lookalike_group for cp in plan.products)
    return WorldSummary(
        drop_id=drop_id,
        out=out,
        truth_out=truth_out,
        items=len(plan.listings),
        products=len(plan.products),
        lookalike_products=sum(n for n in group_sizes.values() if n > 1),
        sellers=int(plan.listings["seller_id"].nunique()),
        queries=len(plan.queries),
        impressions=len(imp),
        clicks=int(imp["clicked"].sum()),
        ctr=round(ctr(imp), 4),
        images=len(jobs),
        window_start=t0.isoformat(),
        window_end=t1.isoformat(),
        seconds=round(time.perf_counter() - started, 2),
    )


def _write_drop(
    folder: Path, drop_id: str, seed: int, plan: WorldPlan, window: tuple[datetime, datetime]
) -> None:
    """The three contract tables and ``drop.json``."""
    catalog = plan.listings.assign(listed_at=_ts(plan.listings["listed_at_us"]))
    write_table(catalog, CATALOG, folder)
    write_table(plan.queries.assign(ts=_ts(plan.queries["ts_us"])), QUERIES, folder)
    write_table(plan.impressions.assign(ts=_ts(plan.impressions["ts_us"])), IMPRESSIONS, folder)
    manifest = {
        "drop_id": drop_id,
        "created_at": window[1].isoformat(),  # the world's "as of" time: deterministic
        "source": SOURCE,
        "seed": seed,
        "window": {"start": window[0].isoformat(), "end": window[1].isoformat()},
        "rows": {
            "catalog": len(catalog),
            "queries": len(plan.queries),
            "impressions": len(plan.impressions),
        },
    }
    (folder / DROP_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _write_truth(
    folder: Path,
    drop_id: str,
    seed: int,
    settings: WorldSettings,
    plan: WorldPlan,
    boxes: dict[int, tuple[int, int, int, int]],
) -> None:
    """Ground truth for evaluation only: query product + box, listing product, attributes.

    ``truth.json`` adds what the contract tables do not carry: the generating settings and
    which queries show a distractor product (and which one).
    """
    q = plan.queries
    box = np.array([boxes[i] for i in range(len(q))], dtype=np.float64).reshape(-1, 4)
    query_truth = pd.DataFrame(
        {
            "query_id": q["query_id"],
            "sku": q["sku"],
            "box_x0": box[:, 0],
            "box_y0": box[:, 1],
            "box_x1": box[:, 2],
            "box_y1": box[:, 3],
        }
    )
    write_table(query_truth, QUERY_TRUTH, folder)
    write_table(plan.listings[["item_id", "sku"]], ITEM_TRUTH, folder)
    products = pd.DataFrame(
        {
            "sku": [cp.sku for cp in plan.products],
            "category": [cp.product.category for cp in plan.products],
            "lookalike_group": [cp.lookalike_group for cp in plan.products],
            "attributes": [cp.product.attributes_json() for cp in plan.products],
        }
    )
    write_table(products, PRODUCTS_TRUTH, folder)
    distractors = {
        qid: d
        for qid, d in zip(q["query_id"], q["distractor_sku"], strict=True)
        if isinstance(d, str)
    }
    manifest = {
        "drop_id": drop_id,
        "seed": seed,
        "source": SOURCE,
        "world": settings.model_dump(mode="json", exclude=set(RUNTIME_ONLY)),
        "distractors": distractors,
    }
    (folder / TRUTH_MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
