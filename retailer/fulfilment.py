"""The sandbox retailer's fulfilment module: accept orders, ship them, call the partner back.

What a partner sees (docs/retailer-api.md, "Fulfilment"):

* `orders/submit` is idempotent on the partner's key: the first call checks stock and
  that every line is self-operated, then accepts (stock taken, an order id given) or
  refuses (`out_of_stock`, `not_self_operated`, `unknown_sku`); every later call with
  the same key gets the same answer and never makes a second shipment.
* Accepted orders move packed -> shipped (carrier + waybill) -> delivered, one step every
  `RETAILER_SANDBOX_STEP_SECONDS`, each step reported by a signed callback.
* `orders/cancel` cancels an order not yet shipped (stock goes back); a key the retailer
  has never seen is remembered as cancelled so a late submit cannot ship it.
* `orders/return` registers a return of delivered goods; the decision follows by callback.

`sandbox_tick()` moves time along: Celery beat runs it every couple of seconds in the full
stack, the embedded beat in the embedded default (config/embedded_beat.py), and tests call it with their own `now`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import secrets
import time
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

import httpx
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string

from retailer.models import SandboxCallback, SandboxFault, SandboxOrder, SandboxProduct, SandboxReturn
from retailer.signing import sign

log = logging.getLogger(__name__)

CARRIERS = ("SF Express", "JD Logistics", "ZTO Express")
NEXT = {
    SandboxOrder.Status.ACCEPTED: SandboxOrder.Status.PACKED,
    SandboxOrder.Status.PACKED: SandboxOrder.Status.SHIPPED,
    SandboxOrder.Status.SHIPPED: SandboxOrder.Status.DELIVERED,
}
MAX_LINES = 50
BATCH_MAX = 100
KEY_MAX = 64


def _api_error(status: int, code: str, message: str):
    from retailer.api import ApiError  # api imports this module

    return ApiError(status, code, message)


def step_seconds() -> float:
    return float(getattr(settings, "RETAILER_SANDBOX_STEP_SECONDS", 5))


def _clean_key(value, what: str = "key") -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= KEY_MAX or not value.isprintable():
        raise _api_error(400, "bad_key", f"{what} must be a string of 1-{KEY_MAX} printable characters")
    return value


def _clean_lines(value) -> list[dict]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_LINES:
        raise _api_error(400, "bad_lines", f"lines must be a list of 1-{MAX_LINES} objects")
    lines = []
    for line in value:
        if not isinstance(line, dict):
            raise _api_error(400, "bad_lines", "every line is an object with sku and quantity")
        sku, qty = line.get("sku"), line.get("quantity")
        if not isinstance(sku, str) or not sku or len(sku) > 64:
            raise _api_error(400, "bad_lines", "every line needs a sku")
        if isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= 999:
            raise _api_error(400, "bad_lines", "quantity must be an integer from 1 to 999")
        lines.append({"sku": sku, "quantity": qty, "title": str(line.get("title", ""))[:200]})
    return lines


def _new_reference() -> str:
    return "JD" + timezone.now().strftime("%y%m%d") + secrets.token_hex(5).upper()


def order_answer(order: SandboxOrder, *, duplicate: bool = False) -> dict:
    answer = {
        "order": {
            "key": order.partner_key,
            "id": order.reference,
            "status": order.status,
            "carrier": order.carrier,
            "waybill": order.waybill,
            "created_at": order.created_at.isoformat(),
        },
        "duplicate": duplicate,
    }
    if order.status == SandboxOrder.Status.REFUSED:
        answer["order"]["refusal"] = {"code": order.refusal_code, "message": order.refusal_message}
    return answer


def _seen(key: str) -> SandboxOrder | None:
    order = SandboxOrder.objects.filter(partner_key=key).first()
    if order is not None:
        SandboxOrder.objects.filter(pk=order.pk).update(times_submitted=F("times_submitted") + 1)
    return order


def _clean_submit(payload) -> tuple[str, list[dict], dict, Decimal]:
    if not isinstance(payload, dict):
        raise _api_error(400, "bad_request", "every order is a JSON object")
    key = _clean_key(payload.get("key"))
    lines = _clean_lines(payload.get("lines"))
    address = payload.get("address") if isinstance(payload.get("address"), dict) else {}
    try:
        total = Decimal(str(payload.get("total", "0"))).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise _api_error(400, "bad_total", "total must be a decimal string")
    return key, lines, address, total


def submit_order(payload: dict) -> dict:
    key = _clean_key(payload.get("key"))
    existing = _seen(key)
    if existing is not None:
        return order_answer(existing, duplicate=True)
    key, lines, address, total = _clean_submit(payload)
    try:
        with transaction.atomic():
            order = _accept_or_refuse_many([(key, lines, address, total)], now=timezone.now())[0]
    except IntegrityError:  # the same key, submitted concurrently: the other call won
        existing = _seen(key)
        if existing is None:
            raise
        return order_answer(existing, duplicate=True)
    return order_answer(order)


def submit_batch(payload: dict) -> dict:
    """`orders/submit-batch`: many submits in one call, each answered as `orders/submit`
    would answer it alone (the same idempotency on each key, the same checks), in the order
    sent. An order that fails validation gets `{"error": {...}}` in its place; the others
    go on. New orders are taken in one transaction, the products locked once for all
    (one at a time if another call took one of the keys meanwhile)."""
    from retailer.api import ApiError  # api imports this module

    items = payload.get("orders")
    if not isinstance(items, list) or not 1 <= len(items) <= BATCH_MAX:
        raise _api_error(400, "bad_orders", f"orders must be a list of 1-{BATCH_MAX} orders")
    answers: list[dict | None] = [None] * len(items)
    keys: dict[int, str] = {}
    for i, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise _api_error(400, "bad_request", "every order is a JSON object")
            keys[i] = _clean_key(item.get("key"))
        except ApiError as exc:
            answers[i] = exc.as_dict()
    sent = Counter(keys.values())  # a key may come more than once
    known = {o.partner_key: o for o in SandboxOrder.objects.filter(partner_key__in=list(sent))}
    # As `orders/submit`: a key already taken is answered as before, whatever the body says now.
    cleaned: dict[int, tuple] = {}
    for i, key in keys.items():
        try:
            cleaned[i] = (key, None, None, None) if key in known else _clean_submit(items[i])
        except ApiError as exc:
            answers[i] = exc.as_dict()
            sent[key] -= 1
    first: dict[str, int] = {}  # a new key -> where it first appears in this batch
    for i, (key, *_) in cleaned.items():
        if key not in known:
            first.setdefault(key, i)
    if first:
        try:
            with transaction.atomic():
                made = _accept_or_refuse_many([cleaned[i] for i in first.values()], now=timezone.now())
        except IntegrityError:
            # A key arrived meanwhile by another call: one at a time, that one answers as a duplicate.
            for i in first.values():
                answers[i] = submit_order(items[i])
            known.update((o.partner_key, o) for o in SandboxOrder.objects.filter(partner_key__in=list(first)))
        else:
            known.update({order.partner_key: order for order in made})
    for i, (key, *_) in cleaned.items():
        if answers[i] is None:
            answers[i] = order_answer(known[key], duplicate=first.get(key) != i)
    # Every appearance counts as a submission, as it would one call at a time.
    repeats: dict[int, list[int]] = {}
    for key, n in sent.items():
        if key in known and (n := n - (key in first)):
            repeats.setdefault(n, []).append(known[key].pk)
    for n, pks in repeats.items():
        SandboxOrder.objects.filter(pk__in=pks).update(times_submitted=F("times_submitted") + n)
    return {"results": answers}


def _accept_or_refuse_many(orders: list[tuple], *, now: datetime) -> list[SandboxOrder]:
    """Accept or refuse each new (key, lines, address, total) in turn, against the stock
    the earlier ones left; the products are locked once, in a fixed order."""
    from retailer.services import touch_products

    skus = {line["sku"] for _key, lines, _address, _total in orders for line in lines}
    products = {p.sku: p for p in SandboxProduct.objects.select_for_update().filter(sku__in=skus).order_by("pk")}
    made, touched = [], {}
    for key, lines, address, total in orders:
        wanted: dict[str, int] = {}
        for line in lines:
            wanted[line["sku"]] = wanted.get(line["sku"], 0) + line["quantity"]
        common = {
            "partner_key": key,
            "reference": _new_reference(),
            "lines": lines,
            "address": address,
            "total": total,
        }
        refusal = _refusal(wanted, products)
        if refusal:
            made.append(
                SandboxOrder(
                    **common, status=SandboxOrder.Status.REFUSED, refusal_code=refusal[0], refusal_message=refusal[1]
                )
            )
            continue
        made.append(
            SandboxOrder(
                **common, status=SandboxOrder.Status.ACCEPTED, next_step_at=now + timedelta(seconds=step_seconds())
            )
        )
        for sku, qty in wanted.items():
            products[sku].stock -= qty
            touched[sku] = products[sku]
    SandboxOrder.objects.bulk_create(made)
    touch_products(list(touched.values()), ["stock"])
    return made


def _refusal(wanted: dict[str, int], products: dict[str, SandboxProduct]) -> tuple[str, str] | None:
    for sku, qty in wanted.items():
        product = products.get(sku)
        if product is None or product.status != SandboxProduct.Status.ACTIVE:
            return "unknown_sku", f"{sku} is not for sale"
        if product.seller_type != SandboxProduct.Seller.SELF_OPERATED:
            return "not_self_operated", f"{sku} is sold by a third-party seller, not shipped by us"
        if product.stock < qty:
            return "out_of_stock", f"Our warehouse has {product.stock} of {sku}, {qty} ordered"
    return None


def get_order(payload: dict) -> dict:
    key = _clean_key(payload.get("key"))
    order = SandboxOrder.objects.filter(partner_key=key).first()
    if order is None:
        raise _api_error(404, "unknown_order", "No order with that key")
    return order_answer(order)


def cancel_order(payload: dict) -> dict:
    """Cancel before shipment. Idempotent: a cancelled order answers cancelled again."""
    key = _clean_key(payload.get("key"))
    with transaction.atomic():
        order = SandboxOrder.objects.select_for_update().filter(partner_key=key).first()
        if order is None:
            # Never seen: remember the key as cancelled, so a submit still on its way is refused.
            try:
                with transaction.atomic():
                    SandboxOrder.objects.create(
                        partner_key=key,
                        reference=_new_reference(),
                        status=SandboxOrder.Status.CANCELLED,
                        refusal_code="cancelled",
                        refusal_message="Cancelled before it arrived",
                    )
            except IntegrityError:
                pass
            return {"cancelled": True, "status": SandboxOrder.Status.CANCELLED, "key": key}
        if order.status in (SandboxOrder.Status.CANCELLED, SandboxOrder.Status.REFUSED):
            return {"cancelled": True, "status": order.status, "key": key}
        if order.status not in (SandboxOrder.Status.ACCEPTED, SandboxOrder.Status.PACKED):
            return {"cancelled": False, "status": order.status, "key": key, "message": "Already shipped"}
        _restock(order)
        order.status = SandboxOrder.Status.CANCELLED
        order.next_step_at = None
        order.save(update_fields=["status", "next_step_at", "updated_at"])
    return {"cancelled": True, "status": order.status, "key": key}


def _restock(order: SandboxOrder) -> None:
    from retailer.services import touch_products

    wanted: dict[str, int] = {}
    for line in order.lines:
        wanted[line["sku"]] = wanted.get(line["sku"], 0) + int(line["quantity"])
    products = list(SandboxProduct.objects.select_for_update().filter(sku__in=wanted).order_by("pk"))
    for product in products:
        product.stock += wanted[product.sku]
    touch_products(products, ["stock"])


def request_return(payload: dict) -> dict:
    key = _clean_key(payload.get("key"), "key")
    order_key = _clean_key(payload.get("order_key"), "order_key")
    reason = payload.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 200:
        raise _api_error(400, "bad_reason", "reason must be 1-200 characters")
    existing = SandboxReturn.objects.filter(partner_key=key).select_related("order").first()
    if existing is not None:
        return return_answer(existing, duplicate=True)
    lines = _clean_lines(payload.get("lines"))
    order = SandboxOrder.objects.filter(partner_key=order_key).first()
    if order is None:
        raise _api_error(404, "unknown_order", "No order with that key")
    if order.status != SandboxOrder.Status.DELIVERED:
        raise _api_error(409, "not_delivered", "Only delivered orders can be returned")
    shipped = {}
    for line in order.lines:
        shipped[line["sku"]] = shipped.get(line["sku"], 0) + int(line["quantity"])
    for line in lines:
        if line["quantity"] > shipped.get(line["sku"], 0):
            raise _api_error(400, "bad_lines", f"{line['sku']}: more returned than delivered")
    try:
        with transaction.atomic():
            ret = SandboxReturn.objects.create(
                partner_key=key,
                order=order,
                lines=lines,
                reason=reason.strip(),
                decide_at=timezone.now() + timedelta(seconds=step_seconds()),
            )
    except IntegrityError:
        ret = SandboxReturn.objects.select_related("order").get(partner_key=key)
        return return_answer(ret, duplicate=True)
    return return_answer(ret)


def return_answer(ret: SandboxReturn, *, duplicate: bool = False) -> dict:
    return {
        "return": {"key": ret.partner_key, "order_key": ret.order.partner_key, "status": ret.status, "note": ret.note},
        "duplicate": duplicate,
    }


# --- time moves on -----------------------------------------------------------------------


def _waybill(order: SandboxOrder) -> tuple[str, str]:
    digest = int(hashlib.sha256(order.reference.encode()).hexdigest(), 16)
    carrier = CARRIERS[digest % len(CARRIERS)]
    prefix = {"SF Express": "SF", "JD Logistics": "JDV", "ZTO Express": "ZTO"}[carrier]
    return carrier, f"{prefix}{digest % 10**12:012d}"


def _queue_callback(order: SandboxOrder, event: str, extra: dict, now: datetime) -> None:
    delivery_id = "cb_" + secrets.token_hex(12)
    body = {
        "delivery_id": delivery_id,
        "event": event,
        "order_key": order.partner_key,
        "retailer_order_id": order.reference,
        "at": now.isoformat(),
        **extra,
    }
    SandboxCallback.objects.create(delivery_id=delivery_id, order=order, event=event, body=body, next_attempt_at=now)


def advance_due(*, now: datetime | None = None, limit: int = 200) -> int:
    """Move every accepted/packed/shipped order whose step is due on by one step."""
    now = now or timezone.now()
    moved = 0
    ids = list(
        SandboxOrder.objects.filter(status__in=list(NEXT), next_step_at__lte=now)
        .order_by("next_step_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in ids:
        with transaction.atomic():
            order = SandboxOrder.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if order is None or order.status not in NEXT or order.next_step_at is None or order.next_step_at > now:
                continue
            order.status = NEXT[order.status]
            extra: dict = {"status": order.status}
            if order.status == SandboxOrder.Status.PACKED:
                order.packed_at = now
            elif order.status == SandboxOrder.Status.SHIPPED:
                order.shipped_at = now
                order.carrier, order.waybill = _waybill(order)
                extra.update(carrier=order.carrier, waybill=order.waybill)
            else:
                order.delivered_at = now
            order.next_step_at = (
                None if order.status == SandboxOrder.Status.DELIVERED else now + timedelta(seconds=step_seconds())
            )
            order.save()
            _queue_callback(order, f"order.{order.status}", extra, now)
            moved += 1
    return moved


def decide_returns(*, now: datetime | None = None, limit: int = 200) -> int:
    now = now or timezone.now()
    decided = 0
    for pk in SandboxReturn.objects.filter(status=SandboxReturn.Status.REQUESTED, decide_at__lte=now).values_list(
        "pk", flat=True
    )[:limit]:
        with transaction.atomic():
            ret = SandboxReturn.objects.select_for_update().select_related("order").get(pk=pk)
            if ret.status != SandboxReturn.Status.REQUESTED:
                continue
            reject = _take_fault(SandboxFault.Kind.REJECT_RETURNS, "orders/return")
            ret.status = SandboxReturn.Status.REJECTED if reject else SandboxReturn.Status.APPROVED
            ret.note = (
                "The goods show signs of use, so the return was not accepted."
                if reject
                else "Approved: the courier collects the parcel; the refund follows."
            )
            ret.decided_at = now
            ret.save(update_fields=["status", "note", "decided_at"])
            _queue_callback(
                ret.order,
                f"return.{ret.status}",
                {"return_key": ret.partner_key, "note": ret.note, "lines": ret.lines},
                now,
            )
            decided += 1
    return decided


def _take_fault(kind: str, endpoint: str = "") -> bool:
    """Consume one fault of this kind, if any is switched on (and its dice say so)."""
    for fault in SandboxFault.objects.filter(kind=kind, remaining__gt=0, endpoint__in=["", endpoint]).order_by("id")[
        :3
    ]:
        if fault.probability < 1 and random.random() >= fault.probability:
            return False
        if SandboxFault.objects.filter(pk=fault.pk, remaining__gt=0).update(remaining=F("remaining") - 1):
            return True
    return False


def _send_one(body: bytes) -> tuple[int, str]:
    """POST one signed callback to the partner; (status, error)."""
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Retailer-Timestamp": timestamp,
        "X-Retailer-Signature": sign(settings.RETAILER_API_SECRET, timestamp, body),
    }
    url = getattr(settings, "RETAILER_CALLBACK_URL", "")
    if not url:  # in-process: the partner's handler, through the same signed-bytes path
        handler = import_string(getattr(settings, "RETAILER_CALLBACK_HANDLER", "fulfilment.callbacks.receive"))
        status, answer = handler(body=body, headers=headers)
        return status, "" if status < 400 else json.dumps(answer)[:300]
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=settings.RETAILER_TIMEOUT)
    except httpx.HTTPError as exc:
        return 0, f"{type(exc).__name__}: {exc}"[:300]
    return response.status_code, "" if response.status_code < 400 else response.text[:300]


def deliver_callbacks(*, now: datetime | None = None, limit: int = 200) -> int:
    """Send the callbacks that are due, oldest first (unless a fault says otherwise)."""
    now = now or timezone.now()
    due = list(
        SandboxCallback.objects.filter(status=SandboxCallback.Status.PENDING, next_attempt_at__lte=now).order_by("id")[
            :limit
        ]
    )
    if len(due) > 1 and _take_fault(SandboxFault.Kind.OUT_OF_ORDER_CALLBACKS):
        due.reverse()
    sent = 0
    for callback in due:
        body = json.dumps(callback.body, separators=(",", ":")).encode()
        copies = 2 if _take_fault(SandboxFault.Kind.DUPLICATE_CALLBACKS) else 1
        status, error = 0, ""
        for _ in range(copies):
            status, error = _send_one(body)
        callback.attempts += 1
        if 200 <= status < 300 or (400 <= status < 500 and status not in (408, 429)):
            # Delivered, or refused for good (retrying a refused body cannot help).
            callback.status = SandboxCallback.Status.SENT
            callback.sent_at = timezone.now()
            callback.last_error = error
            sent += 1
        else:
            callback.last_error = error or f"HTTP {status}"
            callback.next_attempt_at = now + timedelta(seconds=min(60, 2**callback.attempts))
        callback.save(update_fields=["status", "sent_at", "attempts", "last_error", "next_attempt_at"])
    return sent


def sandbox_tick(*, now: datetime | None = None) -> dict[str, int]:
    """One beat of the retailer's clock: ship what is due, decide returns, send callbacks."""
    now = now or timezone.now()
    return {
        "advanced": advance_due(now=now),
        "returns_decided": decide_returns(now=now),
        "callbacks_sent": deliver_callbacks(now=now),
    }
