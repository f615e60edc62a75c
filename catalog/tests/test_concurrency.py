"""Two syncs at once, on real PostgreSQL with real threads: one works, the other stands aside."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from catalog.models import PriceChange, Product, ProductImage, Retailer, SyncRun
from catalog.retailer_client import InProcessRetailerClient
from catalog.services import catalog_sync, products_allow_live
from retailer.seed import seed_sandbox_catalog
from retailer.services import sandbox_churn

pytestmark = pytest.mark.django_db(transaction=True)


class SlowClient(InProcessRetailerClient):
    """The sandbox, with a pause before each page so that runs overlap for sure."""

    def __init__(self, started: threading.Event):
        super().__init__()
        self.started = started

    def catalog_feed(self, *, cursor, limit=100):
        self.started.set()
        threading.Event().wait(0.3)
        return super().catalog_feed(cursor=cursor, limit=limit)


def run_in_threads(targets):
    errors = []

    def wrap(fn):
        try:
            fn()
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrap, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors


def test_concurrent_syncs_do_not_duplicate_or_corrupt_anything():
    seed_sandbox_catalog()
    started = threading.Event()

    def slow_sync():
        catalog_sync(trigger="beat", client=SlowClient(started), page_size=50)

    def second_sync():
        started.wait(10)
        catalog_sync(trigger="admin")

    run_in_threads([slow_sync, second_sync, second_sync])

    runs = SyncRun.objects.order_by("pk")
    statuses = sorted(runs.values_list("status", flat=True))
    assert statuses == ["skipped", "skipped", "succeeded"]
    total = Product.objects.count()
    assert total >= 200
    assert Product.objects.values("sku").distinct().count() == total
    assert PriceChange.objects.count() == total  # one "first price" per product, none twice
    assert ProductImage.objects.filter(position=0).count() == total
    assert Retailer.objects.get().sync_lease_until is None


def test_many_syncs_racing_after_churn_agree_with_one_sync():
    seed_sandbox_catalog()
    catalog_sync(trigger="seed")
    sandbox_churn(seed=5, price_changes=30, stock_changes=30)

    run_in_threads([lambda: catalog_sync(trigger="beat", page_size=7) for _ in range(4)])

    # Whichever runs did the work, the catalog now matches the feed exactly once.
    assert sum(SyncRun.objects.exclude(trigger="seed").values_list("price_changes", flat=True)) == 30
    assert PriceChange.objects.exclude(old_price=None).count() == 30
    again = catalog_sync(trigger="command", full=True)
    assert (again.created, again.updated, again.withdrawn) == (0, 0, 0)


def test_staff_enabling_products_while_a_sync_withdraws_them_never_breaks_the_rule():
    seed_sandbox_catalog()
    catalog_sync(trigger="seed")
    ids = list(Product.objects.filter(self_operated=True).values_list("pk", flat=True))
    sandbox_churn(seed=9, price_changes=0, stock_changes=0, retirements=20, flips_to_third_party=20)

    run_in_threads(
        [lambda: catalog_sync(trigger="beat", page_size=5)] + [lambda: products_allow_live(product_ids=ids)] * 3
    )

    assert not Product.objects.filter(sellable=True).exclude(self_operated=True, in_feed=True).exists()
    assert Product.objects.filter(in_feed=False).count() == 20


def test_a_lease_left_by_a_dead_worker_expires():
    seed_sandbox_catalog()
    retailer = Retailer.objects.create(code="jdm", name="Jindou Mall")
    Retailer.objects.filter(pk=retailer.pk).update(
        sync_lease_until=timezone.now() + timedelta(minutes=5), sync_lease_holder="dead-worker"
    )
    assert catalog_sync(trigger="beat").status == SyncRun.Status.SKIPPED
    Retailer.objects.filter(pk=retailer.pk).update(sync_lease_until=timezone.now() - timedelta(seconds=1))
    assert catalog_sync(trigger="beat").status == SyncRun.Status.SUCCEEDED
