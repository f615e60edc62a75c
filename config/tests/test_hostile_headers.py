"""Signed callbacks with a timestamp header that is not ASCII digits (issue 17, finding 4).

The tester's client sent "¹²³" the way most HTTP clients do, as latin-1 bytes (b"\\xb9\\xb2\\xb3");
a server hands those bytes on and Django reads them as "¹²³", which `str.isdigit()` calls
digits and `int()` refuses. Each endpoint must answer 401 and change nothing.
"""

import json
import time

import pytest
from asgiref.sync import async_to_sync

from config.tests import rawhttp
from fulfilment.models import RetailerCallback
from orders import payments
from orders.models import Order, PaymentCallback
from orders.tests import factories as f
from retailer import signing

pytestmark = pytest.mark.django_db(transaction=True)

ODD_TIMESTAMP_IDS = ["superscript", "arabic-indic", "not-utf8", "signed", "spaced", "too-long"]
ODD_TIMESTAMPS = [
    "¹²³".encode("latin-1"),  # superscript digits
    ("\u0661\u0667" + "\u0660" * 8).encode(),  # Arabic-Indic digits, sent as UTF-8
    b"\xff\xfe1700000000",
    b"+1700000000",
    b" 1700000000",
    b"1" * 40,
]
ODD_SIGNATURES = ["é".encode("latin-1") * 64, b"\xff" * 64, b"zz" * 32]
ODD_SIGNATURE_IDS = ["latin-1", "not-utf8", "not-hex"]


def post(path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict]:
    status, content = async_to_sync(rawhttp.request)(
        path, body=body, headers=[(b"content-type", b"application/json"), *headers]
    )
    return status, rawhttp.json_body(content)


@pytest.fixture
def waiting_order():
    from orders import services

    item = f.shelf_item(stock=5)
    buyer = f.user()
    result = services.order_place(user=buyer, shelf_item_id=item.pk, quantity=1, address_id=f.address(buyer).pk,
                                  payment_method=f.CARD_CONFIRM, idempotency_key="odd-header-1")  # fmt: skip
    return Order.objects.get(number=result.order.number)


def state(order) -> tuple:
    order.refresh_from_db()
    return order.status, PaymentCallback.objects.count(), RetailerCallback.objects.count()


@pytest.mark.parametrize("stamp", ODD_TIMESTAMPS, ids=ODD_TIMESTAMP_IDS)
def test_payment_callback_refuses_an_odd_timestamp_with_401(settings, waiting_order, stamp):
    settings.PAYMENT_SANDBOX_CONFIRM_SECONDS = 0
    before = state(waiting_order)
    body, _ = payments.signed_callback(reference=waiting_order.payment.reference, outcome="succeeded")
    text = stamp.decode("latin-1")
    signature = payments.sign(body, text).encode() if text.isascii() else b"0" * 64
    status, _ = post("/orders/payments/callback", body,
                     [(b"x-payment-timestamp", stamp), (b"x-payment-signature", signature)])  # fmt: skip
    assert status == 401
    assert state(waiting_order) == before


@pytest.mark.parametrize("signature", ODD_SIGNATURES, ids=ODD_SIGNATURE_IDS)
def test_payment_callback_refuses_an_odd_signature_with_401(settings, waiting_order, signature):
    before = state(waiting_order)
    body, _ = payments.signed_callback(reference=waiting_order.payment.reference, outcome="succeeded")
    now = str(int(time.time())).encode()
    status, _ = post("/orders/payments/callback", body,
                     [(b"x-payment-timestamp", now), (b"x-payment-signature", signature)])  # fmt: skip
    assert status == 401
    assert state(waiting_order) == before


@pytest.mark.parametrize("stamp", ODD_TIMESTAMPS, ids=ODD_TIMESTAMP_IDS)
def test_retailer_callback_refuses_an_odd_timestamp_with_401(waiting_order, stamp):
    before = state(waiting_order)
    body = json.dumps({"delivery_id": "d-odd", "event": "order.packed", "order_key": waiting_order.number}).encode()
    status, answer = post("/fulfilment/retailer/callback", body,
                          [(b"x-retailer-timestamp", stamp), (b"x-retailer-signature", b"0" * 64)])  # fmt: skip
    assert status == 401 and answer["error"] == "bad_timestamp"
    assert state(waiting_order) == before


@pytest.mark.parametrize("signature", ODD_SIGNATURES, ids=ODD_SIGNATURE_IDS)
def test_retailer_callback_refuses_an_odd_signature_with_401(waiting_order, signature):
    before = state(waiting_order)
    body = json.dumps({"delivery_id": "d-odd", "event": "order.packed", "order_key": waiting_order.number}).encode()
    now = str(int(time.time())).encode()
    status, answer = post("/fulfilment/retailer/callback", body,
                          [(b"x-retailer-timestamp", now), (b"x-retailer-signature", signature)])  # fmt: skip
    assert status == 401 and answer["error"] == "bad_signature"
    assert state(waiting_order) == before


@pytest.mark.parametrize("stamp", ODD_TIMESTAMPS, ids=ODD_TIMESTAMP_IDS)
def test_sandbox_retailer_api_refuses_an_odd_timestamp_with_401(settings, stamp):
    body = b"{}"
    status, answer = post("/retailer-api/v1/catalog/categories", body, [
        (b"x-retailer-key", settings.RETAILER_API_KEY.encode()), (b"x-retailer-timestamp", stamp),
        (b"x-retailer-signature", signing.sign(settings.RETAILER_API_SECRET, "0", body).encode()),
    ])  # fmt: skip
    assert status == 401 and answer["error"]["code"] == "bad_timestamp"


@pytest.mark.parametrize("signature", ODD_SIGNATURES, ids=ODD_SIGNATURE_IDS)
def test_sandbox_retailer_api_refuses_an_odd_signature_with_401(settings, signature):
    status, answer = post("/retailer-api/v1/catalog/categories", b"{}", [
        (b"x-retailer-key", settings.RETAILER_API_KEY.encode()),
        (b"x-retailer-timestamp", str(int(time.time())).encode()), (b"x-retailer-signature", signature),
    ])  # fmt: skip
    assert status == 401 and answer["error"]["code"] == "bad_signature"


@pytest.mark.parametrize("length", [b"\xb9\xb2\xb3", b"-1", b"1e3"], ids=["superscript", "negative", "float"])
def test_an_odd_content_length_is_refused_cleanly(length):
    for path in ("/fulfilment/retailer/callback", "/retailer-api/v1/catalog/categories"):
        status, _ = async_to_sync(rawhttp.request)(path, body=b"{}", headers=[(b"content-length", length)])
        assert 400 <= status < 500, path
