"""The retailer's signed status callbacks.

Signature: hex(HMAC-SHA256(RETAILER_CALLBACK_SECRET, f"{timestamp}.{body}")) in
X-Retailer-Signature, Unix seconds in X-Retailer-Timestamp. Refused with no change:
a missing or wrong signature or a timestamp more than TOLERANCE_SECONDS away (401), a
body that is not the documented JSON (400), an order we don't know (404). A delivery id
seen before answers 200 `duplicate` and changes nothing; a step the order has already
passed answers 200 `stale` and never moves it back.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

import inbound
from fulfilment import services
from fulfilment.models import AfterSalesRequest, CommissionEntry, Handoff, RetailerCallback
from orders.models import Order

TOLERANCE_SECONDS = 300
MAX_BODY = 16 * 1024
TIMESTAMP_HEADER = "X-Retailer-Timestamp"
SIGNATURE_HEADER = "X-Retailer-Signature"
ORDER_EVENTS = {"order.packed": "packed", "order.shipped": "shipped", "order.delivered": "delivered"}
RETURN_EVENTS = {"return.approved", "return.rejected"}


def sign(body: bytes, timestamp: str, secret: str | None = None) -> str:
    secret = settings.RETAILER_CALLBACK_SECRET if secret is None else secret
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _header(headers: Mapping, name: str) -> str:
    value = headers.get(name) or headers.get(name.lower()) or ""
    return value if isinstance(value, str) else ""


def _short_str(data: dict, name: str, required: bool = True, limit: int = 64) -> str:
    value = data.get(name, "")
    if not isinstance(value, str) or len(value) > limit or (required and not value):
        raise ValueError(name)
    return value


def receive(*, body: bytes, headers: Mapping) -> tuple[int, dict]:
    """Check and apply one callback delivery; (HTTP status, JSON answer)."""
    if len(body) > MAX_BODY:
        return 413, {"error": "too_large", "message": f"Callbacks are limited to {MAX_BODY} bytes"}
    timestamp, signature = _header(headers, TIMESTAMP_HEADER), _header(headers, SIGNATURE_HEADER)
    if not timestamp or not signature:
        return 401, {
            "error": "missing_signature",
            "message": f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required",
        }
    seconds = inbound.unix_timestamp(timestamp)
    if seconds is None:
        return 401, {"error": "bad_timestamp", "message": "The timestamp must be Unix seconds"}
    if abs(time.time() - seconds) > TOLERANCE_SECONDS:
        return 401, {"error": "stale_timestamp", "message": f"More than {TOLERANCE_SECONDS} s from our clock"}
    signature = inbound.hex_signature(signature)
    if signature is None or not hmac.compare_digest(sign(body, timestamp), signature):
        return 401, {"error": "bad_signature", "message": "The signature does not match the body"}
    try:
        data = inbound.parse_json(body, max_bytes=MAX_BODY)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        delivery_id = _short_str(data, "delivery_id")
        event = _short_str(data, "event")
        order_key = _short_str(data, "order_key")
        carrier = _short_str(data, "carrier", required=False, limit=40)
        waybill = _short_str(data, "waybill", required=False, limit=40)
        return_key = _short_str(data, "return_key", required=event in RETURN_EVENTS)
        note = _short_str(data, "note", required=False, limit=200)
    except inbound.Refused as exc:
        return 400, {"error": "malformed", "message": f"The body is not a valid callback ({exc.message})"}
    except ValueError as exc:
        return 400, {"error": "malformed", "message": f"The body is not a valid callback ({exc})"}
    if event not in ORDER_EVENTS and event not in RETURN_EVENTS:
        return 400, {"error": "unknown_event", "message": f"Unknown event {event!r}"}
    order_id = Order.objects.filter(number=order_key).values_list("pk", flat=True).first()
    if order_id is None:
        return 404, {"error": "unknown_order", "message": "No such order"}
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        try:
            with transaction.atomic():
                record = RetailerCallback.objects.create(
                    delivery_id=delivery_id,
                    event=event,
                    order_number=order_key,
                    outcome=RetailerCallback.Outcome.APPLIED,
                )
        except IntegrityError:
            return 200, {"ok": True, "duplicate": True}
        if event in ORDER_EVENTS:
            outcome, detail = _apply_order_event(order, ORDER_EVENTS[event], carrier=carrier, waybill=waybill)
        else:
            outcome, detail = _apply_return_event(order, event, return_key=return_key, note=note)
        record.outcome, record.detail = outcome, detail[:200]
        record.save(update_fields=["outcome", "detail"])
    return 200, {"ok": True, "outcome": outcome}


def _apply_order_event(order: Order, step: str, *, carrier: str, waybill: str) -> tuple[str, str]:
    handoff, _ = Handoff.objects.get_or_create(order=order)
    changed = []
    if carrier and waybill and not handoff.waybill:  # details fill in even when the step arrives late
        handoff.carrier, handoff.waybill = carrier, waybill
        changed += ["carrier", "waybill"]
    now = timezone.now()
    if step == "delivered" and handoff.delivered_at is None and order.status in services.CHAIN:
        handoff.delivered_at = now
        handoff.return_window_ends = now + timedelta(days=settings.FULFILMENT_RETURN_WINDOW_DAYS)
        changed += ["delivered_at", "return_window_ends"]
        CommissionEntry.objects.filter(order=order, status=CommissionEntry.Status.PENDING).update(
            settle_after=handoff.return_window_ends
        )
    if changed:
        handoff.save(update_fields=changed)
    if step == "shipped":
        reason = f"Shipped with {handoff.carrier}, tracking number {handoff.waybill}" if handoff.waybill else "Shipped"
    elif step == "packed":
        reason = "Packed at the retailer's warehouse"
    else:
        reason = "Delivered"
    moved = services.advance(order=order, to=step, reason=reason)
    if not moved:
        return RetailerCallback.Outcome.STALE, f"order is {order.status}"
    if step == "shipped":
        services._tell_buyer(
            order,
            f"Your order {order.number} has shipped with {handoff.carrier or 'the courier'}"
            f"{', tracking ' + handoff.waybill if handoff.waybill else ''}.",
            toast=True,
        )
    elif step == "delivered":
        services._tell_buyer(order, f"Your order {order.number} was delivered. Enjoy!", toast=True)
    return RetailerCallback.Outcome.APPLIED, f"order is {order.status}"


def _apply_return_event(order: Order, event: str, *, return_key: str, note: str) -> tuple[str, str]:
    request = AfterSalesRequest.objects.select_for_update().filter(order=order, key=return_key).first()
    if request is None or request.status != AfterSalesRequest.Status.REQUESTED:
        return RetailerCallback.Outcome.STALE, "no open return with that key"
    approved = event == "return.approved"
    request.status = AfterSalesRequest.Status.APPROVED if approved else AfterSalesRequest.Status.REJECTED
    request.decided_at = timezone.now()
    request.note = note or ("Approved" if approved else "Declined by the retailer")
    request.save(update_fields=["status", "decided_at", "note"])
    if approved:
        from fulfilment import tasks

        request_id = request.pk
        transaction.on_commit(lambda: tasks.refund_return.delay(request_id))
    else:
        services._tell_buyer(order, f"Your return for order {order.number} was declined: {request.note}")
    order_id = order.pk
    transaction.on_commit(lambda: services.live.order_changed(order_id=order_id))
    return RetailerCallback.Outcome.APPLIED, request.status
