"""The HTTP backend against the sandbox retailer served over a real socket (pytest-django's live_server)."""

import json
import time

import httpx
import pytest

from catalog.models import Product, SyncRun
from catalog.retailer_client import (
    HttpRetailerClient,
    InProcessRetailerClient,
    RetailerRejected,
    RetailerTimeout,
    RetailerUnavailable,
    get_retailer_client,
)
from catalog.services import catalog_sync
from retailer.seed import seed_sandbox_catalog
from retailer.services import set_fault


@pytest.fixture
def api_url(live_server, transactional_db):
    seed_sandbox_catalog()
    return f"{live_server.url}/retailer-api/"


class CountingClient(HttpRetailerClient):
    attempts = 0

    def _send(self, endpoint, payload):
        self.attempts += 1
        return super()._send(endpoint, payload)


def client(api_url, **kwargs):
    return CountingClient(base_url=api_url, **{"retries": 2, "backoff": 0.01, "timeout": 5, **kwargs})


def test_signed_requests_get_the_same_answers_as_in_process(api_url):
    over_http = client(api_url).catalog_feed(cursor="", limit=20)
    in_process = InProcessRetailerClient().catalog_feed(cursor="", limit=20)
    assert over_http == in_process
    assert len(over_http["items"]) == 20 and over_http["has_more"]


def test_a_whole_sync_over_http(api_url):
    run = catalog_sync(trigger="command", client=client(api_url), page_size=64)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert run.pages == 4 and run.created == Product.objects.count() >= 200


def test_settings_choose_the_backend(settings, api_url):
    settings.RETAILER_BACKEND = "http"
    settings.RETAILER_API_URL = api_url
    backend = get_retailer_client()
    assert isinstance(backend, HttpRetailerClient)
    assert backend.catalog_categories()["retailer"]["name"] == "Jindou Mall"


def test_a_5xx_is_retried_then_succeeds(api_url):
    set_fault(kind="error", status_code=503, times=2, endpoint="catalog/feed")
    backend = client(api_url, retries=2)
    page = backend.catalog_feed(cursor="", limit=5)
    assert len(page["items"]) == 5 and backend.attempts == 3


def test_5xx_after_the_last_retry_is_a_clear_unavailable_error(api_url):
    set_fault(kind="error", status_code=502, times=5, endpoint="catalog/feed")
    backend = client(api_url, retries=2)
    with pytest.raises(RetailerUnavailable) as exc:
        backend.catalog_feed(cursor="", limit=5)
    assert "HTTP 502" in str(exc.value) and exc.value.status == 502
    assert backend.attempts == 3


def test_a_slow_retailer_is_a_clear_timeout(api_url):
    set_fault(kind="slow", delay_seconds=1.5, times=3, endpoint="catalog/feed")
    backend = client(api_url, timeout=0.3, retries=1)
    with pytest.raises(RetailerTimeout) as exc:
        backend.catalog_feed(cursor="", limit=5)
    assert "no answer within 0.3 s" in str(exc.value) and backend.attempts == 2


def test_a_bad_signature_is_refused(api_url):
    with pytest.raises(RetailerRejected) as exc:
        client(api_url, secret="wrong-secret").catalog_feed(cursor="", limit=5)
    assert exc.value.status == 401 and exc.value.code == "bad_signature"


def test_a_stale_timestamp_is_refused(api_url):
    signer = client(api_url)
    body = json.dumps({"limit": 5}).encode()
    headers = signer.signed_headers(body, timestamp=int(time.time()) - 3600)
    response = httpx.post(f"{api_url}v1/catalog/feed", content=body, headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "stale_timestamp"


def test_a_refused_request_is_not_retried(api_url):
    backend = client(api_url, retries=3)
    with pytest.raises(RetailerRejected) as exc:
        backend.catalog_feed(cursor="not-a-cursor", limit=5)
    assert exc.value.code == "bad_cursor" and backend.attempts == 1


def test_an_unreachable_retailer_is_unavailable():
    dead = HttpRetailerClient(base_url="http://127.0.0.1:9/retailer-api/", retries=1, backoff=0.01, timeout=1)
    with pytest.raises(RetailerUnavailable) as exc:
        dead.catalog_categories()
    assert "cannot reach" in str(exc.value)
