"""Signed payment callbacks: forged, stale and replayed ones change nothing."""

import json
import time

import pytest
from django.urls import reverse

from orders import services
from orders.models import Order, Payment, PaymentCallback, StockBucket
from orders.payments import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, signed_callback
from orders.tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting():
    """An order whose card needs the bank's confirmation."""
    item = f.shelf_item(stock=5)
    buyer = f.user()
    addr = f.address(buyer)
    result = services.order_place(user=buyer, shelf_item_id=item.pk, quantity=1, address_id=addr.pk,
                                  payment_method=f.CARD_CONFIRM, idempotency_key="confirm-me-1")  # fmt: skip
    return Order.objects.get(number=result.order.number)


def post(client, body: bytes, headers: dict):
    return client.post(
        reverse("orders:payment_callback"), body, content_type="application/json",
        headers={"X-Payment-Signature": headers.get(SIGNATURE_HEADER, ""),
                 "X-Payment-Timestamp": headers.get(TIMESTAMP_HEADER, "")},
    )  # fmt: skip


def status(order):
    return Order.objects.get(pk=order.pk).status, Payment.objects.get(order=order).status


def test_valid_callback_confirms_the_order(client, waiting):
    body, headers = signed_callback(reference=waiting.payment.reference, outcome="succeeded")
    resp = post(client, body, headers)
    assert resp.status_code == 200 and resp.json()["result"] == "paid"
    assert status(waiting) == ("paid", "succeeded")


def test_declined_callback_fails_the_order_and_returns_stock(client, waiting):
    body, headers = signed_callback(reference=waiting.payment.reference, outcome="declined")
    assert post(client, body, headers).status_code == 200
    assert status(waiting) == ("payment_failed", "declined")
    assert StockBucket.objects.get(kind="regular").available == 5


def test_forged_signature_is_refused(client, waiting):
    body, headers = signed_callback(reference=waiting.payment.reference, outcome="succeeded")
    forged = {**headers, SIGNATURE_HEADER: sign(body, headers[TIMESTAMP_HEADER], secret="guessed-secret")}
    assert post(client, body, forged).status_code == 401
    tampered = body.replace(b"succeeded", b"declined!")
    assert post(client, tampered, headers).status_code == 401
    assert post(client, body, {TIMESTAMP_HEADER: headers[TIMESTAMP_HEADER]}).status_code == 401
    assert status(waiting) == ("pending_payment", "requires_confirmation")
    assert not PaymentCallback.objects.exists()


def test_stale_timestamp_is_refused(client, waiting):
    body, headers = signed_callback(reference=waiting.payment.reference, outcome="succeeded",
                                    at=int(time.time()) - 600)  # fmt: skip
    assert post(client, body, headers).status_code == 401
    body, headers = signed_callback(reference=waiting.payment.reference, outcome="succeeded",
                                    at=int(time.time()) + 600)  # fmt: skip
    assert post(client, body, headers).status_code == 401
    assert status(waiting) == ("pending_payment", "requires_confirmation")


def test_same_valid_callback_ten_times_changes_once(client, waiting):
    body, headers = signed_callback(reference=waiting.payment.reference, outcome="succeeded", delivery_id="dl-once")
    answers = [post(client, body, headers).json() for _ in range(10)]
    assert answers[0]["result"] == "paid"
    assert all(a == {"ok": True, "duplicate": True} for a in answers[1:])
    assert status(waiting) == ("paid", "succeeded")
    assert waiting.events.filter(to_status="paid").count() == 1
    assert StockBucket.objects.get(kind="regular").sold == 1


def test_a_later_declined_delivery_cannot_undo_a_payment(client, waiting):
    ok_body, ok_headers = signed_callback(reference=waiting.payment.reference, outcome="succeeded")
    post(client, ok_body, ok_headers)
    no_body, no_headers = signed_callback(reference=waiting.payment.reference, outcome="declined")
    assert post(client, no_body, no_headers).json()["result"] == "already_final"
    assert status(waiting) == ("paid", "succeeded")


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[]", b"{}",
     json.dumps({"delivery_id": "d1", "reference": "pay_x", "outcome": "succeeded"}).encode(),
     json.dumps({"delivery_id": 5, "reference": "r", "outcome": "succeeded"}).encode(),
     json.dumps({"delivery_id": "d2", "reference": "r", "outcome": "refund_everything"}).encode()],
)  # fmt: skip
def test_malformed_or_unknown_signed_bodies_change_nothing(client, waiting, payload):
    ts = str(int(time.time()))
    resp = post(client, payload, {SIGNATURE_HEADER: sign(payload, ts), TIMESTAMP_HEADER: ts})
    assert resp.status_code in (400, 404) and "error" in resp.json()
    assert status(waiting) == ("pending_payment", "requires_confirmation")


def test_callback_endpoint_only_takes_post(client):
    assert client.get(reverse("orders:payment_callback")).status_code == 405
