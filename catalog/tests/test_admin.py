"""The merchandising team's admin: list, filters, search, actions, read-only feed fields, query counts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import Product, SyncRun
from catalog.services import catalog_sync

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/catalog/product/"


def changelist_queries(admin_client) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_product_list_query_count_does_not_grow_with_rows(admin_client, make_products):
    make_products(5)
    five = changelist_queries(admin_client)
    make_products(45)
    fifty = changelist_queries(admin_client)
    assert fifty == five
    assert Product.objects.count() == 50


def test_product_list_shows_what_merchandisers_need(admin_client, make_products):
    make_products(1, title="Xiaomi 15 5G, 12GB+256GB Black", retailer_stock=3)
    html = admin_client.get(CHANGELIST).content.decode()
    assert "Xiaomi 15 5G, 12GB+256GB Black" in html
    assert "¥1,999.00" in html
    assert 'class="cat-thumb"' in html
    assert 'class="cat-stock low"' in html
    assert ">Selling<" in html
    assert "Sync catalog now" in html


def test_search_by_sku_brand_and_title_and_stock_filter(admin_client, make_products):
    make_products(3)
    make_products(1, title="Midea rice cooker", brand="Midea", retailer_stock=0)
    assert "Midea rice cooker" in admin_client.get(CHANGELIST, {"q": "midea"}).content.decode()
    by_sku = admin_client.get(CHANGELIST, {"q": "SKU-0001"}).content.decode()
    assert "Phone model 0001" in by_sku and "Phone model 0002" not in by_sku
    out = admin_client.get(CHANGELIST, {"stock": "out"}).content.decode()
    assert "Midea rice cooker" in out and "Phone model 0000" not in out


def test_allow_and_withdraw_actions(admin_client, make_products):
    own = make_products(2, sellable=False)
    third_party = make_products(1, sellable=False, self_operated=False)
    ids = [p.pk for p in own + third_party]
    response = admin_client.post(
        CHANGELIST, {"action": "allow_live", "_selected_action": ids, "index": 0}, follow=True
    )
    text = response.content.decode()
    assert "2 product(s) can now be sold in live rooms" in text
    assert "1 product(s) refused" in text
    assert set(Product.objects.filter(sellable=True).values_list("pk", flat=True)) == {p.pk for p in own}

    admin_client.post(CHANGELIST, {"action": "withdraw", "_selected_action": [own[0].pk], "index": 0})
    withdrawn = Product.objects.get(pk=own[0].pk)
    assert not withdrawn.sellable and withdrawn.withdrawn_reason == "Withdrawn by staff"


def test_retailer_fields_are_read_only_and_ours_are_editable(admin_client, make_products):
    product = make_products(1, sellable=False)[0]
    url = f"/admin/catalog/product/{product.pk}/change/"
    html = admin_client.get(url).content.decode()
    assert 'name="sellable"' in html and 'name="commission_rate"' in html
    assert 'name="title"' not in html and 'name="list_price"' not in html and 'name="retailer_stock"' not in html

    admin_client.post(url, {
        "sellable": "on", "commission_rate": "0.0800", "min_live_price": "", "withdrawn_reason": "",
        "title": "Hacked title", "list_price": "1.00",
        "images-TOTAL_FORMS": "1", "images-INITIAL_FORMS": "1",
        "images-MIN_NUM_FORMS": "0", "images-MAX_NUM_FORMS": "0",
        "images-0-id": str(product.images.get().pk), "images-0-product": str(product.pk),
    })  # fmt: skip
    product.refresh_from_db()
    assert product.sellable and str(product.commission_rate) == "0.0800"
    assert product.title == "Phone model 0000" and str(product.list_price) == "1999.00"


def test_admin_form_refuses_to_sell_a_third_party_product(admin_client, make_products):
    product = make_products(1, sellable=False, self_operated=False)[0]
    response = admin_client.post(f"/admin/catalog/product/{product.pk}/change/", {
        "sellable": "on", "commission_rate": "", "min_live_price": "", "withdrawn_reason": "",
        "images-TOTAL_FORMS": "0", "images-INITIAL_FORMS": "0",
        "images-MIN_NUM_FORMS": "0", "images-MAX_NUM_FORMS": "0",
    })  # fmt: skip
    assert response.status_code == 200
    assert "Only products sold and shipped by the retailer itself" in response.content.decode()
    product.refresh_from_db()
    assert not product.sellable


def test_sync_now_button_and_sync_run_list(admin_client, sandbox):
    response = admin_client.post("/admin/catalog/product/sync-now/", follow=True)
    assert "created" in response.content.decode()
    run = SyncRun.objects.get()
    assert run.trigger == "admin" and run.created == sandbox["products"]
    assert admin_client.get("/admin/catalog/product/sync-now/").status_code == 302  # GET does nothing
    assert SyncRun.objects.count() == 1

    html = admin_client.get("/admin/catalog/syncrun/").content.decode()
    assert "Succeeded" in html and str(sandbox["products"]) in html
    assert admin_client.get(f"/admin/catalog/syncrun/{run.pk}/change/").status_code == 200


def test_sync_run_page_lists_rejected_entries(admin_client):
    from catalog.tests.conftest import FakeRetailer, entry

    run = catalog_sync(trigger="admin", client=FakeRetailer([[entry("OK"), entry("NEG", price="-3")]]))
    html = admin_client.get(f"/admin/catalog/syncrun/{run.pk}/change/").content.decode()
    assert "NEG" in html and "negative price -3" in html
