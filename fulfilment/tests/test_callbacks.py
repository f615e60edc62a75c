"""The retailer's signed callbacks: forged, stale, replayed and malformed ones change nothing."""

import json
import time

import pytest
from django.urls import reverse

from fulfilment import callbacks, services
from fulfilment.models import OutboxMessage, RetailerCallback
from orders.models import Order, OrderEvent

URL = "/fulfilment/retailer/callback"


@pytest.fixture
def accepted(shop):
    order = shop.buy()
    msg = OutboxMessage.objects.get(order=order)
    assert services.outbox_deliver(message_id=msg.pk) == "ok"
    order.refresh_from_db()
    assert order.status == "accepted"
    return order


def signed(body: dict, *, at: int | None = None, secret: str | None = None) -> tuple[bytes, dict]:
    raw = json.dumps(body).encode()
    ts = str(int(time.time()) if at is None else at)
    return raw, {"HTTP_X_RETAILER_TIMESTAMP": ts, "HTTP_X_RETAILER_SIGNATURE": callbacks.sign(raw, ts, secret)}


def event(order, name: str, delivery: str, **extra) -> dict:
    return {"delivery_id": delivery, "event": name, "order_key": order.number, "retailer_order_id": "JDX", **extra}


def post(client, raw: bytes, headers: dict):
    return client.post(URL, raw, content_type="application/json", **headers)


def snapshot(order):
    order = Order.objects.get(pk=order.pk)
    return order.status, OrderEvent.objects.filter(order=order).count(), RetailerCallback.objects.count()


def test_url_is_the_documented_one():
    assert reverse("fulfilment:callback") == URL


def test_a_valid_callback_moves_the_order(client, accepted):
    raw, headers = signed(event(accepted, "order.packed", "d-1"))
    resp = post(client, raw, headers)
    assert resp.status_code == 200 and resp.json()["outcome"] == "applied"
    assert Order.objects.get(pk=accepted.pk).status == "packed"


def test_forged_callbacks_are_refused_with_no_change(client, accepted):
    before = snapshot(accepted)
    raw, headers = signed(event(accepted, "order.shipped", "d-f", carrier="SF", waybill="SF1"), secret="guess")
    assert post(client, raw, headers).status_code == 401
    raw, headers = signed(event(accepted, "order.packed", "d-g"))
    tampered = raw.replace(b"order.packed", b"order.shipped")
    assert post(client, tampered, headers).status_code == 401
    assert post(client, raw, {}).status_code == 401
    assert post(client, raw, {**headers, "HTTP_X_RETAILER_TIMESTAMP": "yesterday"}).status_code == 401
    assert snapshot(accepted) == before


def test_stale_callbacks_are_refused(client, accepted):
    before = snapshot(accepted)
    raw, headers = signed(event(accepted, "order.packed", "d-old"), at=int(time.time()) - 3600)
    resp = post(client, raw, headers)
    assert resp.status_code == 401 and resp.json()["error"] == "stale_timestamp"
    raw, headers = signed(event(accepted, "order.packed", "d-new"), at=int(time.time()) + 3600)
    assert post(client, raw, headers).status_code == 401
    assert snapshot(accepted) == before


def test_the_same_callback_ten_times_changes_the_order_once(client, accepted):
    raw, headers = signed(event(accepted, "order.shipped", "d-ship", carrier="SF Express", waybill="SF0001"))
    answers = [post(client, raw, headers).json() for _ in range(10)]
    assert sum(1 for a in answers if a.get("outcome") == "applied") == 1
    assert sum(1 for a in answers if a.get("duplicate")) == 9
    order = Order.objects.get(pk=accepted.pk)
    assert order.status == "shipped"
    assert order.events.filter(to_status="shipped").count() == 1
    assert order.buyer.notifications.filter(text__contains="has shipped").count() == 1


def test_out_of_order_callbacks_never_move_an_order_backwards(client, accepted):
    raw, headers = signed(event(accepted, "order.delivered", "d-3"))
    assert post(client, raw, headers).json()["outcome"] == "applied"
    order = Order.objects.get(pk=accepted.pk)
    assert order.status == "delivered"
    assert list(order.events.values_list("to_status", flat=True))[-3:] == ["packed", "shipped", "delivered"]
    # The earlier steps arrive late: recorded as stale, the order stays delivered...
    raw, headers = signed(event(accepted, "order.packed", "d-1"))
    assert post(client, raw, headers).json()["outcome"] == "stale"
    raw, headers = signed(event(accepted, "order.shipped", "d-2", carrier="ZTO Express", waybill="ZTO123"))
    assert post(client, raw, headers).json()["outcome"] == "stale"
    order = Order.objects.get(pk=accepted.pk)
    assert order.status == "delivered" and order.events.filter(to_status="delivered").count() == 1
    # ...but the parcel's details still fill in.
    assert order.handoff.waybill == "ZTO123"


def test_malformed_and_unknown_callbacks_get_clear_4xx(client, accepted):
    before = snapshot(accepted)
    too_long = {"delivery_id": "x" * 300, "event": "order.packed", "order_key": "a"}
    for body in (b"not json", b"[]", json.dumps({"event": "order.packed"}).encode(), json.dumps(too_long).encode()):
        ts = str(int(time.time()))
        headers = {"HTTP_X_RETAILER_TIMESTAMP": ts, "HTTP_X_RETAILER_SIGNATURE": callbacks.sign(body, ts)}
        resp = post(client, body, headers)
        assert resp.status_code == 400, body
    raw, headers = signed(event(accepted, "order.teleported", "d-x"))
    assert post(client, raw, headers).status_code == 400
    raw, headers = signed({**event(accepted, "order.packed", "d-y"), "order_key": "LM0000-NOPE"})
    assert post(client, raw, headers).status_code == 404
    assert client.get(URL).status_code == 405
    assert snapshot(accepted) == before


def test_sandbox_fault_switches_duplicate_and_reorder_callbacks(accepted, settings):
    """The retailer's own faults (duplicates, newest-first) end in the same single delivery."""
    from datetime import timedelta

    from django.utils import timezone

    from retailer import fulfilment as sandbox
    from retailer.services import set_fault

    set_fault(kind="dup_callbacks", times=10)
    set_fault(kind="ooo_callbacks", times=10)
    now = timezone.now()
    # Let the retailer walk all three steps before it sends anything, then send the batch.
    sandbox.advance_due(now=now + timedelta(seconds=10))
    sandbox.advance_due(now=now + timedelta(seconds=20))
    sandbox.advance_due(now=now + timedelta(seconds=30))
    sandbox.deliver_callbacks(now=now + timedelta(seconds=40))
    order = Order.objects.get(pk=accepted.pk)
    assert order.status == "delivered"
    for step in ("packed", "shipped", "delivered"):
        assert order.events.filter(to_status=step).count() == 1
    assert order.handoff.waybill
    assert RetailerCallback.objects.filter(order_number=order.number).count() == 3
