"""The catalog sync: idempotent, incremental, records prices, withdraws, survives bad entries."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from catalog.models import PriceChange, Product, Retailer, SyncRun
from catalog.services import catalog_sync, products_allow_live, products_allow_live_in_stock
from catalog.tasks import sync_catalog
from catalog.tests.conftest import FakeRetailer, entry
from retailer.services import sandbox_churn

pytestmark = pytest.mark.django_db


def test_first_sync_copies_the_whole_sandbox_catalog(sandbox):
    run = catalog_sync(trigger="command")
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.created == sandbox["products"] == Product.objects.count()
    assert run.rejected == 0 and run.full
    phone = Product.objects.filter(category__code="phones", self_operated=True).first()
    assert phone.retailer.name == "Jindou Mall"
    assert phone.list_price > 0 and phone.currency == "CNY" and phone.images.count() == 3
    assert not Product.objects.filter(sellable=True).exists()  # staff decide what sells live
    assert PriceChange.objects.count() == run.created


def test_second_sync_changes_nothing(sandbox):
    catalog_sync(trigger="command")
    before = list(Product.objects.order_by("pk").values_list("pk", "updated_at", "list_price"))
    again = catalog_sync(trigger="command")
    assert (again.created, again.updated, again.withdrawn) == (0, 0, 0)
    assert list(Product.objects.order_by("pk").values_list("pk", "updated_at", "list_price")) == before
    # A full re-read of the feed finds everything unchanged too.
    full = catalog_sync(trigger="command", full=True)
    assert (full.created, full.updated, full.withdrawn, full.unchanged) == (0, 0, 0, sandbox["products"])
    assert PriceChange.objects.count() == sandbox["products"]


def test_incremental_sync_brings_prices_stock_and_withdrawals(sandbox):
    catalog_sync(trigger="seed")
    products_allow_live_in_stock(retailer=Retailer.objects.get())
    counts = sandbox_churn(seed=3, price_changes=10, stock_changes=10, retirements=2, flips_to_third_party=1)

    run = catalog_sync(trigger="command")
    assert run.status == SyncRun.Status.SUCCEEDED and not run.full
    assert run.price_changes == counts["price_changes"] == 10
    assert run.withdrawn == counts["retired"] + counts["flipped"] == 3
    assert run.pages == 1 and run.created == 0

    retired = Product.objects.filter(withdrawn_reason="Retired by the retailer")
    assert retired.count() == 2
    assert all(not p.in_feed and not p.sellable for p in retired)
    flipped = Product.objects.get(withdrawn_reason="Now sold by a third-party seller")
    assert not flipped.self_operated and not flipped.sellable and flipped.in_feed
    # Withdrawn products stay: orders refer to them.
    assert Product.objects.count() == sandbox["products"]


def test_price_change_is_recorded_with_old_and_new_price(sandbox):
    catalog_sync(trigger="command")
    sandbox_churn(seed=11, price_changes=1, stock_changes=0, retirements=0, flips_to_third_party=0, revivals=0)
    run = catalog_sync(trigger="command")
    change = PriceChange.objects.get(sync_run=run)
    product = change.product
    assert change.old_price != change.new_price == product.list_price
    assert list(product.price_changes.values_list("new_price", flat=True)) == [change.new_price, change.old_price]


def test_lowest_price_in_30_days_counts_the_price_in_force_at_the_window_start(make_products):
    from catalog.selectors import lowest_price

    product = make_products(1, list_price=Decimal("120.00"))[0]
    now = timezone.now()
    for days_ago, old, new in [(40, None, "80.00"), (20, "80.00", "100.00"), (5, "100.00", "120.00")]:
        PriceChange.objects.create(
            product=product, old_price=old, new_price=new, changed_at=now - timedelta(days=days_ago)
        )
    # 80 was still the price 30 days ago (it changed 20 days ago), so it is the lowest.
    assert lowest_price(product=product, days=30, now=now) == Decimal("80.00")
    assert lowest_price(product=product, days=10, now=now) == Decimal("100.00")


def test_bad_entries_are_rejected_and_reported_and_the_run_goes_on(db):
    fake = FakeRetailer(
        [
            [
                entry("OK-1"),
                {k: v for k, v in entry("NO-TITLE").items() if k != "title"},
                entry("NEG", price="-5.00"),
                entry("CAT", category="spaceships"),
                "not an object",
                entry("TXT", price="cheap"),
                entry("STOCK", stock=-1),
            ],
            [entry("OK-2")],
        ]
    )
    run = catalog_sync(trigger="command", client=fake)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.created == 2 and run.rejected == 6
    assert set(Product.objects.values_list("sku", flat=True)) == {"OK-1", "OK-2"}
    reasons = {e["sku"]: e["error"] for e in run.errors}
    assert "title" in reasons["NO-TITLE"]
    assert "negative price" in reasons["NEG"]
    assert "unknown category" in reasons["CAT"]
    assert run.pages == 2 and run.finished_at is not None


def test_full_sync_withdraws_what_left_the_feed_but_keeps_rejected_entries(db):
    catalog_sync(trigger="command", client=FakeRetailer([[entry("A"), entry("B"), entry("C")]]))
    products_allow_live(product_ids=list(Product.objects.values_list("pk", flat=True)))
    # B is gone from the feed; C's entry is broken this time (rejected, not treated as gone).
    run = catalog_sync(trigger="command", full=True, client=FakeRetailer([[entry("A"), entry("C", price="-1")]]))
    assert run.withdrawn == 1 and run.rejected == 1
    b, c = Product.objects.get(sku="B"), Product.objects.get(sku="C")
    assert not b.in_feed and not b.sellable and b.withdrawn_reason == "No longer in the retailer's feed"
    assert c.in_feed and c.sellable


def test_third_party_products_are_never_sellable(sandbox):
    catalog_sync(trigger="command")
    third_party = list(Product.objects.filter(self_operated=False).values_list("pk", flat=True))
    assert third_party
    allowed, refused = products_allow_live(product_ids=third_party)
    assert allowed == 0 and refused == len(third_party)
    assert products_allow_live_in_stock(retailer=Retailer.objects.get()) > 0
    assert not Product.objects.filter(self_operated=False, sellable=True).exists()
    # Not even by writing the row directly: the database refuses.
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.filter(pk=third_party[0]).update(sellable=True)


def test_a_product_back_in_the_feed_waits_for_staff(db):
    catalog_sync(trigger="command", client=FakeRetailer([[entry("A")]]))
    products_allow_live(product_ids=[Product.objects.get().pk])
    catalog_sync(trigger="command", client=FakeRetailer([[entry("A", status="retired")]]))
    catalog_sync(trigger="command", client=FakeRetailer([[entry("A")]]))
    product = Product.objects.get()
    assert product.in_feed and not product.sellable


def test_a_retailer_outage_fails_the_run_and_keeps_what_was_committed(sandbox):
    from retailer.services import set_fault

    set_fault(kind="error", times=10, endpoint="catalog/feed")
    run = catalog_sync(trigger="command")
    assert run.status == SyncRun.Status.FAILED
    assert "temporarily unavailable" in run.message
    assert Retailer.objects.get().sync_lease_until is None  # the lease is released
    assert Product.objects.count() == 0


def test_the_command_the_task_and_the_admin_action_share_one_sync(sandbox, admin_client, capsys):
    call_command("sync_catalog")
    assert f"{sandbox['products']} created, 0 updated, 0 withdrawn, 0 rejected" in capsys.readouterr().out
    sync_catalog.delay()
    admin_client.post("/admin/catalog/product/sync-now/")
    triggers = list(SyncRun.objects.order_by("pk").values_list("trigger", flat=True))
    assert triggers == ["command", "beat", "admin"]
    assert SyncRun.objects.filter(status=SyncRun.Status.SUCCEEDED).count() == 3
