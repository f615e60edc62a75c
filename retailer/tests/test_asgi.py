"""The retailer's API served straight from ASGI answers exactly as the Django view does."""

import json
import time

import pytest
from asgiref.sync import async_to_sync
from channels.testing import ApplicationCommunicator, HttpCommunicator
from django.conf import settings

from retailer import asgi as retailer_asgi
from retailer.seed import seed_sandbox_catalog
from retailer.signing import sign

pytestmark = pytest.mark.django_db(transaction=True)  # the API's own threads must see the data


async def django_stand_in(scope, receive, send):
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": b"django"})


APP = retailer_asgi.mount(django_stand_in)


@pytest.fixture
def seeded():
    seed_sandbox_catalog()


def signed_headers(body: bytes, *, secret=None) -> list[tuple[bytes, bytes]]:
    ts = str(int(time.time()))
    return [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-retailer-key", settings.RETAILER_API_KEY.encode()),
        (b"x-retailer-timestamp", ts.encode()),
        (b"x-retailer-signature", sign(secret or settings.RETAILER_API_SECRET, ts, body).encode()),
    ]


async def call(method, path, body=b"", headers=None):
    response = await HttpCommunicator(APP, method, path, body=body, headers=headers).get_response(timeout=10)
    return response["status"], json.loads(response["body"]) if response["status"] != 299 else None, response


def test_signed_request_gets_the_same_answer_as_the_django_view(seeded, client):
    body = json.dumps({"limit": 3}).encode()
    status, answer, response = async_to_sync(call)("POST", "/retailer-api/v1/catalog/feed", body, signed_headers(body))
    assert status == 200 and (b"content-type", b"application/json") in response["headers"]
    meta = {f"HTTP_{k.decode().upper().replace('-', '_')}": v.decode() for k, v in signed_headers(body)[2:]}
    view = client.post("/retailer-api/v1/catalog/feed", data=body, content_type="application/json", **meta)
    assert answer == view.json() and len(answer["items"]) == 3


async def test_refusals_match_the_view():
    body = json.dumps({"limit": 3}).encode()
    status, _, response = await call("GET", "/retailer-api/v1/catalog/feed")
    assert status == 405 and (b"allow", b"POST") in response["headers"]
    status, answer, _ = await call("POST", "/retailer-api/v1/catalog/feed", body, [(b"content-length", b"3")])
    assert status == 401 and answer["error"]["code"] == "missing_signature"
    status, answer, _ = await call("POST", "/retailer-api/v1/catalog/feed", body, signed_headers(body, secret="x"))
    assert status == 401 and answer["error"]["code"] == "bad_signature"
    status, answer, _ = await call("POST", "/retailer-api/v1/orders/nope", b"{}", signed_headers(b"{}"))
    assert status == 404 and answer["error"]["code"] == "unknown_endpoint"
    status, answer, _ = await call("POST", "/retailer-api/v1/catalog/feed", b"{nope", signed_headers(b"{nope"))
    assert status == 400 and answer["error"]["code"] == "bad_json"


async def test_a_body_over_the_limit_is_refused_declared_or_not():
    big = b"x" * (70 * 1024)
    status, answer, _ = await call("POST", "/retailer-api/v1/catalog/feed", big, [(b"content-length", b"71680")])
    assert status == 413 and answer["error"]["code"] == "body_too_large"
    # No Content-Length (chunked): the body is read up to the limit, then refused.
    comm = ApplicationCommunicator(
        APP, {"type": "http", "method": "POST", "path": "/retailer-api/v1/catalog/feed", "headers": []}
    )
    for _ in range(3):
        await comm.send_input({"type": "http.request", "body": big[: 30 * 1024], "more_body": True})
    await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await comm.receive_output(10)
    assert start["status"] == 413


async def test_other_paths_go_to_django():
    status, _, _ = await call("GET", "/retailer-api/v2/anything")
    assert status == 299
    status, _, _ = await call("GET", "/healthz")
    assert status == 299
