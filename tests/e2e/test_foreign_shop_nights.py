"""A shop that is not the demo world, three scheduled-style nights, a served index.

The acceptance of "a shop's own data": a drop written by another program (tests/foreign.py:
its own products, backgrounds and click model, no ground truth) arrives in the incoming folder;
a night with no arguments (what the schedule runs) validates, versions, trains on the window,
gates on click metrics and ships to a running BentoML service over real HTTP. A second night
takes a delta (new clicks, 5% of listings changed, 2% removed, a few new) and the served
catalog reflects it; a third night with nothing new does nothing. Photos of the shop's
products that no drop ever held are then searched through the service: recall@10 against
truth the generator kept to itself must beat chance clearly (the full-size figure, with the
project's own params, comes from ``bench/foreign_shop.py``).
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.foreign import fresh_photos, write_delta, write_snapshot
from tests.kit import REPO_ROOT, scratch_project, tiny_project
from vsearch.index.release import current_version
from vsearch.settings import ServicesSettings, Settings, load_settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DAY0 = datetime.now(UTC) - timedelta(days=5)
TOKEN = "foreign-shop-admin"
PRODUCTS = 30
FRESH = 60
K = 10


def _settings(live: ServicesSettings, root: Path, inbox: Path, port: int) -> Settings:
    """The tiny project with a bit more training (so that it learns something), the shop's
    incoming folder, a service on ``port`` serving the champion, gates a toy model can pass."""
    s = tiny_project(load_settings(REPO_ROOT / "params.yaml"), live)
    s.train.steps_per_epoch = 25
    s.ingest.incoming = str(inbox)
    s.validation.data_docs = False
    s.serving.port = port
    s.serving.model_source = "registry"
    s.serving.model_cache_dir = root / ".services" / "models"
    s.serving.admin_token_env = "VSEARCH_TEST_ADMIN_TOKEN"
    s.registry.model_name = "foreign-shop"  # the session's MLflow is shared: own aliases
    g = s.registry.gates
    g.click_floors = {"click_recall@10": 0.0, "latency_p95_ms": 5000.0}
    g.click_tolerances = {"click_recall@10": 1.0, "latency_p95_ms": 10.0}
    return s


def _chance_recall(catalog_products: list[str], photos: list[tuple[bytes, str]]) -> float:
    """Recall@K of K listings drawn at random: the bar a model that learned nothing meets."""
    n = len(catalog_products)
    total = 0.0
    for _, product in photos:
        m = catalog_products.count(product)
        total += 1 - math.comb(n - m, K) / math.comb(n, K)
    return total / len(photos)


def _search(url: str, photo: bytes, **fields: object) -> dict:
    files = {"image": ("q.jpg", photo, "image/jpeg")}
    resp = httpx.post(f"{url}/search", files=files, data=fields, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _served(url: str) -> dict:
    """What the service serves (``/info``, with the admin token: it shows paths)."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    resp = httpx.post(f"{url}/info", headers=auth, json={}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["serving"]


def _window(served: dict) -> list[str]:
    """The drop ids of the window the served release was built from."""
    (view,) = served["lineage"]["drops"]
    return [d["drop"] for d in view["window"]]


def _listed(hits: list[dict]) -> set[str]:
    """Every listing a result list shows: group heads and the sellers grouped under them."""
    return {h["item_id"] for h in hits} | {i for h in hits for i in h["more_sellers"]}


def test_foreign_shop_three_nights_to_a_served_index(
    prefect_server: str,
    mlflow_server: str,
    live_services: ServicesSettings,
    scratch_repo: Path,
    tmp_path: Path,
    port_factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow

    from flows.nightly import nightly_flow
    from vsearch.local import service

    inbox = tmp_path / "incoming"
    port = port_factory()
    s = _settings(live_services, scratch_repo, inbox, port)
    params = scratch_project(scratch_repo, s)
    monkeypatch.setenv(s.serving.admin_token_env, TOKEN)  # the service and the flow share it
    url = f"http://127.0.0.1:{port}"
    client = mlflow.MlflowClient(mlflow_server)
    name = s.registry.model_name or s.model.name

    shop = write_snapshot(
        inbox / "shop-001", drop_id="shop-001", products=PRODUCTS, queries=180, start=DAY0
    )
    started = service.start_background(
        "127.0.0.1",
        port,
        params,
        scratch_repo,
        tmp_path / "service.log",
        s.serving.start_timeout_s,
        wait_path=service.LIVE_PATH,  # nothing released yet: up, not ready
        env={s.serving.admin_token_env: TOKEN},
    )
    try:
        # Night 1: a scheduled night (no arguments) takes the drop and ships a first release.
        night1 = nightly_flow(repo_root=str(scratch_repo), params=str(params))
        assert [r["drop_id"] for r in night1["ingested"]] == ["shop-001"]
        assert night1["promotion"]["shipped"] is True
        assert night1["promotion"]["reload"]["status"] == "reloaded"
        metrics = json.loads(Path(night1["training"]["metrics_path"]).read_text())
        assert metrics["families"] == ["click"] and metrics["eval_set"]["truth"] is False
        clicks = {"click_recall@1", "click_recall@10", "click_mrr", "click_category_acc_fused"}
        assert clicks <= metrics.keys() and "identical_recall@10" not in metrics
        assert metrics["inputs"]["drop"] == str(s.ingest.window_dir)  # the merged window
        first = current_version(scratch_repo / s.project.indexes_dir)
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
        served = _served(url)
        assert served["release"] == first and _window(served) == ["shop-001"]

        # Night 2: a delta. The model retrains on the window of both drops; the served catalog
        # has the changed rows, not the removed ones, and the new listings.
        changes = write_delta(
            shop,
            inbox / "shop-002",
            drop_id="shop-002",
            queries=90,
            changed=0.05,
            removed=0.02,
            start=DAY0 + timedelta(days=2),
        )
        night2 = nightly_flow(repo_root=str(scratch_repo), params=str(params))
        assert [r["drop_id"] for r in night2["ingested"]] == ["shop-002"]
        assert night2["training"]["stages"]["train"] is True
        assert night2["promotion"]["shipped"] is True
        second = current_version(scratch_repo / s.project.indexes_dir)
        assert second != first
        version = client.get_model_version_by_alias(name, s.registry.champion_alias).version
        assert version == str(night2["promotion"]["version"])
        served = _served(url)
        assert served["release"] == second
        assert _window(served) == ["shop-001", "shop-002"]
        assert served["model"]["version"] == version

        catalog = shop.catalog.set_index("item_id")
        photo_urls = {}
        for category in sorted(catalog["category"].unique()):
            live = set(catalog.index[catalog["category"] == category])
            photo = fresh_photos(shop, 1, seed=len(live))[0][0]
            hits = _search(url, photo, k=s.search.max_k, category=category)["results"]
            assert _listed(hits) == live  # removed gone, new and changed there
            photo_urls.update({h["item_id"]: h["image_url"] for h in hits})
            for h in hits:
                if h["item_id"] in changes["changed"]:
                    assert h["title"].startswith("SALE ")
                    assert h["price"] == pytest.approx(catalog.loc[h["item_id"], "price"])
        assert set(changes["new"]) <= set(catalog.index)
        assert not set(changes["removed"]) & set(catalog.index)

        # Night 3: nothing new, nothing changed: nothing happens.
        night3 = nightly_flow(repo_root=str(scratch_repo), params=str(params))
        assert night3["nothing_to_do"] is True and night3["training"] is None
        assert current_version(scratch_repo / s.project.indexes_dir) == second
        assert client.get_model_version_by_alias(name, s.registry.champion_alias).version == (
            version
        )

        # The served photos come from the ingested drops, not the window view the next night
        # rewrites: they still answer with the view gone (both drops' listings).
        view = scratch_repo / s.ingest.window_dir
        view.rename(view.with_name("window-aside"))
        try:
            assert {u.split("/")[2] for u in photo_urls.values()} == {"shop-001", "shop-002"}
            for item, link in photo_urls.items():
                resp = httpx.get(url + link, timeout=10)
                assert resp.status_code == 200 and resp.content[:2] == b"\xff\xd8", item
        finally:
            view.with_name("window-aside").rename(view)

        # Never-seen photos of the shop's products, truth kept outside the pipeline.
        photos = fresh_photos(shop, FRESH)
        found = 0
        for photo, product in photos:
            hits = _search(url, photo, k=K)["results"]
            found += any(shop.item_product[i] == product for i in _listed(hits))
        recall = found / len(photos)
        chance = _chance_recall([shop.item_product[i] for i in catalog.index], photos)
        print(f"foreign shop: recall@{K} {recall:.3f} on {FRESH} fresh photos, chance {chance:.3f}")
        assert recall >= chance + 0.15
    finally:
        service.stop(started)
        os.environ.pop(s.serving.admin_token_env, None)
