"""The sandbox retailer behaves like another company's system: its feed, signing and faults."""

import json
import time
from pathlib import Path

import pytest
from django.conf import settings

from retailer import api
from retailer.models import SandboxProduct
from retailer.seed import seed_sandbox_catalog
from retailer.services import sandbox_churn, set_fault
from retailer.signing import sign

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded():
    return seed_sandbox_catalog()


def test_seed_makes_a_realistic_catalog_once(seeded):
    assert seeded["products"] >= 200
    products = SandboxProduct.objects.all()
    assert products.count() == seeded["products"]
    categories = set(products.values_list("category__code", flat=True))
    assert {"phones", "appliances", "groceries", "beauty", "home"} <= categories
    third_party = products.filter(seller_type=SandboxProduct.Seller.THIRD_PARTY).count()
    assert 0.1 <= third_party / products.count() <= 0.3
    assert not products.filter(price__lte=0).exists()
    assert products.filter(stock=0).exists() and products.filter(stock__gt=100).exists()
    # Every picture the feed names exists on disk.
    for url in products.first().image_urls:
        assert (Path(settings.MEDIA_ROOT) / url.removeprefix(settings.MEDIA_URL)).stat().st_size > 2000

    again = seed_sandbox_catalog()
    assert again["created"] == 0 and again["images_drawn"] == 0
    assert SandboxProduct.objects.count() == seeded["products"]


def test_feed_pages_through_everything_once_in_order(seeded):
    seen, cursor = [], ""
    while True:
        page = api.handle("catalog/feed", {"cursor": cursor, "limit": 50})
        seen += [item["sku"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert len(seen) == len(set(seen)) == seeded["products"]
    # Nothing new: the same cursor gives an empty page and does not move.
    page = api.handle("catalog/feed", {"cursor": cursor, "limit": 50})
    assert page == {"items": [], "next_cursor": cursor, "has_more": False}


def test_churn_puts_changed_products_back_in_the_feed(seeded):
    cursor = api.handle("catalog/feed", {"limit": 500})["next_cursor"]
    counts = sandbox_churn(seed=7, price_changes=5, stock_changes=5, retirements=1, flips_to_third_party=1)
    page = api.handle("catalog/feed", {"cursor": cursor, "limit": 500})
    statuses = [item["status"] for item in page["items"]]
    assert 3 <= len(page["items"]) <= 12
    assert statuses.count("retired") == counts["retired"] == 1
    assert sum(item["seller"]["type"] == "third_party" for item in page["items"]) >= counts["flipped"]


@pytest.mark.parametrize(
    "payload, code",
    [
        ({"cursor": "abc"}, "bad_cursor"),
        ({"cursor": "-1"}, "bad_cursor"),
        ({"limit": 0}, "bad_limit"),
        ({"limit": 100000}, "bad_limit"),
        ({"limit": "10"}, "bad_limit"),
    ],
)
def test_feed_refuses_bad_cursor_and_limit(payload, code):
    with pytest.raises(api.ApiError) as exc:
        api.handle("catalog/feed", payload)
    assert exc.value.status == 400 and exc.value.code == code


def signed_post(client, path, payload, *, secret=None, timestamp=None, key=None):
    body = json.dumps(payload).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return client.post(
        path,
        data=body,
        content_type="application/json",
        HTTP_X_RETAILER_KEY=key or settings.RETAILER_API_KEY,
        HTTP_X_RETAILER_TIMESTAMP=ts,
        HTTP_X_RETAILER_SIGNATURE=sign(secret or settings.RETAILER_API_SECRET, ts, body),
    )


def test_http_api_answers_a_signed_request(client, seeded):
    response = signed_post(client, "/retailer-api/v1/catalog/feed", {"limit": 3})
    assert response.status_code == 200
    assert len(response.json()["items"]) == 3 and response.json()["has_more"] is True


@pytest.mark.parametrize(
    "kwargs, code",
    [
        ({"secret": "not-the-secret"}, "bad_signature"),
        ({"timestamp": int(time.time()) - 3600}, "stale_timestamp"),
        ({"key": "someone-else"}, "unknown_key"),
    ],
)
def test_http_api_refuses_forged_or_replayed_requests(client, seeded, kwargs, code):
    response = signed_post(client, "/retailer-api/v1/catalog/feed", {"limit": 3}, **kwargs)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


def test_http_api_gives_clear_errors_for_bad_requests(client):
    assert client.get("/retailer-api/v1/catalog/feed").status_code == 405
    unsigned = client.post("/retailer-api/v1/catalog/feed", data="{}", content_type="application/json")
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "missing_signature"
    ts = str(int(time.time()))
    bad_json = client.post(
        "/retailer-api/v1/catalog/feed",
        data=b"{nope",
        content_type="application/json",
        HTTP_X_RETAILER_KEY=settings.RETAILER_API_KEY,
        HTTP_X_RETAILER_TIMESTAMP=ts,
        HTTP_X_RETAILER_SIGNATURE=sign(settings.RETAILER_API_SECRET, ts, b"{nope"),
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"]["code"] == "bad_json"
    assert signed_post(client, "/retailer-api/v1/orders/nope", {}).status_code == 404
    assert signed_post(client, "/retailer-api/v1/catalog/feed", [1, 2]).status_code == 400


def test_injected_faults_answer_errors_then_recover(client, seeded):
    set_fault(kind="error", times=2, status_code=503)
    codes = [signed_post(client, "/retailer-api/v1/catalog/feed", {"limit": 1}).status_code for _ in range(3)]
    assert codes == [503, 503, 200]


def test_sandbox_churn_command_reports_what_changed(seeded, capsys):
    from django.core.management import call_command

    cursor = api.handle("catalog/feed", {"limit": 500})["next_cursor"]
    call_command("sandbox_churn", "--seed", "4", "--prices", "3", "--stock", "0", "--retire", "1", "--flip", "0")
    assert "price_changes 3" in capsys.readouterr().out
    changed = api.handle("catalog/feed", {"cursor": cursor, "limit": 500})["items"]
    assert [i["status"] for i in changed].count("retired") == 1
