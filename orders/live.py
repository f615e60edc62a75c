"""Order events: small JSON dicts with a `type`, one builder each, and their delivery.

Everything here runs after commit (services call it from `transaction.on_commit`). Room
events go through the room fan-out (`streams.fanout.publish`), which is at-most-once:
clients re-read the truth from snapshots and `/orders/…/status`.

Who receives what:
* the whole room: `stock` (coalesced across processes), `purchase` (masked, throttled), `flash_sale`,
  `flash_sale.sold_out` (once per sale);
* the buyer only: the `buy.result` reply on their own socket, then the order's status
  from `/orders/<number>/status` (figures are never broadcast);
* the host only: sales figures from `/orders/rooms/<id>/sales` (see selectors.room_sales).
"""

from __future__ import annotations

import functools
import logging
import threading
from decimal import Decimal

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

log = logging.getLogger(__name__)

LOW_STOCK = 10
TICKER_PER_SECOND = 2


def _iso(value):
    return value.isoformat() if value else None


def stock_state(left: int) -> str:
    if left <= 0:
        return "sold_out"
    if left <= LOW_STOCK:
        return "low"
    return "in_stock"


def mask_name(name: str) -> str:
    """ "Wang Fang" -> "Wa**": enough for a ticker, not enough to find anyone."""
    name = (name or "").strip() or "Someone"
    keep = 1 if len(name) <= 3 else 2
    return name[:keep] + "**"


# --- builders ----------------------------------------------------------------------------


def order_summary(order, *, lines=None) -> dict:
    lines = list(order.lines.all()) if lines is None else lines
    return summary(number=order.number, status=order.status, currency=order.currency, subtotal=order.subtotal,
                   shipping=order.shipping, discount=order.discount, total=order.total,
                   payment=order.payment_label, expires_at=order.expires_at,
                   lines=[(ln.shelf_item_id, ln.title, ln.quantity, ln.unit_price) for ln in lines])  # fmt: skip


def summary(*, number: str, status: str, currency: str, subtotal, shipping, discount, total, payment: str,
            expires_at, lines: list[tuple]) -> dict:  # fmt: skip
    """An order as its buyer sees it, from plain values: `lines` are (shelf item, title,
    quantity, unit price). The fast path answers from the values it wrote, with no model."""
    from orders.models import order_url

    return {
        "number": number,
        "status": status,
        "status_label": _status_labels().get(status, status),
        "currency": currency,
        "subtotal": str(subtotal),
        "shipping": str(shipping),
        "discount": str(discount),
        "total": str(total),
        "payment": payment,
        "expires_at": _iso(expires_at) if status == "pending_payment" else None,
        "url": order_url(number),
        "lines": [
            {"item": item, "title": title, "quantity": quantity, "unit_price": str(unit_price)}
            for item, title, quantity, unit_price in lines
        ],
    }


@functools.cache
def _status_labels() -> dict[str, str]:
    from orders.models import Order

    return {value: str(label) for value, label in Order.Status.choices}


def ev_stock(*, v: int, item_id: int, sale_id: int | None, left: int) -> dict:
    return {"type": "stock", "v": v, "item": item_id, "sale": sale_id, "left": left, "state": stock_state(left)}


def ev_purchase(*, v: int, who: str, quantity: int, item_id: int, title: str) -> dict:
    return {"type": "purchase", "v": v, "who": who, "quantity": quantity, "item": item_id, "title": title[:80]}


def flash_sale_payload(sale, *, left: int | None = None, now=None) -> dict:
    now = now or timezone.now()
    left = sale.bucket.available if left is None else left
    return {
        "id": sale.pk,
        "item": sale.shelf_item_id,
        "sale_price": str(sale.sale_price),
        "quantity": sale.quantity,
        "left": left,
        "per_user_limit": sale.per_user_limit,
        "starts_at": _iso(sale.starts_at),
        "ends_at": _iso(sale.ends_at),
        "server_now": _iso(now),
        "phase": sale.phase(now),
        "sold_out": sale.sold_out_at is not None or left <= 0,
    }


def ev_flash_sale(*, v: int, sale: dict) -> dict:
    return {"type": "flash_sale", "v": v, "sale": sale}


def ev_flash_sold_out(*, v: int, sale_id: int, item_id: int) -> dict:
    return {"type": "flash_sale.sold_out", "v": v, "sale": sale_id, "item": item_id}


def ev_buy_result(*, ref, result: dict) -> dict:
    return {"type": "buy.result", "ref": ref, **result}


def ev_order_update(*, ref, result: dict) -> dict:
    return {"type": "order.update", "ref": ref, **result}


def ev_quote(*, ref, quote: dict) -> dict:
    return {"type": "buy.quote", "ref": ref, **quote}


# --- delivery ----------------------------------------------------------------------------


def _room_version(room_id: int) -> int:
    from streams.models import Room

    return Room.objects.filter(pk=room_id).values_list("version", flat=True).first() or 0


def _publish(room_id: int, event: dict) -> None:
    try:
        from streams import fanout

        fanout.publish(room_id, event)
    except Exception:  # at-most-once: a lost event is recovered from the next snapshot
        log.exception("publishing %s to room %s failed", event.get("type"), room_id)


_pending: dict[tuple[int, int, int | None], int] = {}
_pending_lock = threading.Lock()


def coalesce_seconds() -> float:
    return float(getattr(settings, "ORDERS_STOCK_COALESCE_SECONDS", 0.3))


def stock_changed(*, room_id: int, item_id: int, sale_id: int | None, left: int) -> None:
    """Stock moved. The room hears about it at most ~3 times a second per item, whatever
    the number of web processes selling it (a shared window, `_stock_turn`); the value
    sent is re-read from the database when the window closes."""
    key = (room_id, item_id, sale_id)
    with _pending_lock:
        first = key not in _pending
        _pending[key] = left
    if first:
        _arm(key)


def _arm(key: tuple[int, int, int | None]) -> None:
    timer = threading.Timer(coalesce_seconds(), _flush_stock, args=(key,))
    timer.daemon = True
    timer.start()


def _stock_turn(key: tuple[int, int, int | None]) -> bool:
    """True if no process published this item's stock within the window (then this one does)."""
    try:
        from streams import fanout

        room_id, item_id, sale_id = key
        return fanout.hit(key=f"orders-stock:{room_id}:{item_id}:{sale_id}", limit=1, window=coalesce_seconds())
    except Exception:
        return True


def _flush_stock(key: tuple[int, int, int | None]) -> None:
    from orders import selectors

    if not _stock_turn(key):  # another process just told the room: try again when its window ends
        _arm(key)
        return
    room_id, item_id, sale_id = key
    with _pending_lock:
        left = _pending.pop(key, 0)
    try:
        left = selectors.stock_left(item_id=item_id, sale_id=sale_id, default=left)
        _publish(room_id, ev_stock(v=_room_version(room_id), item_id=item_id, sale_id=sale_id, left=left))
    except Exception:
        log.exception("stock flush for room %s failed", room_id)
    finally:
        close_old_connections()
        connection.close()


def flash_sold_out(*, room_id: int, sale_id: int) -> None:
    from orders.models import FlashSale

    item_id = FlashSale.objects.filter(pk=sale_id).values_list("shelf_item_id", flat=True).first()
    _publish(room_id, ev_flash_sold_out(v=_room_version(room_id), sale_id=sale_id, item_id=item_id))


def flash_sale_started(*, sale_id: int) -> None:
    from orders.models import FlashSale

    sale = FlashSale.objects.select_related("bucket").get(pk=sale_id)
    _publish(sale.room_id, ev_flash_sale(v=_room_version(sale.room_id), sale=flash_sale_payload(sale)))


def _ticker_allowed(room_id: int) -> bool:
    try:
        from streams import fanout

        return fanout.hit(key=f"orders-ticker:{room_id}", limit=TICKER_PER_SECOND, window=1.0)
    except Exception:
        return True


def order_paid(*, order_id: int, room_id: int) -> None:
    """The room's purchase ticker, at most TICKER_PER_SECOND a second (the order is read
    only for the ones shown)."""
    from orders.models import Order

    if not _ticker_allowed(room_id):
        return
    order = Order.objects.select_related("buyer").prefetch_related("lines").filter(pk=order_id).first()
    if order is not None:
        line = order.lines.all()[0]
        _publish(order.room_id, ev_purchase(
            v=_room_version(order.room_id), who=mask_name(order.buyer.public_name), quantity=line.quantity,
            item_id=line.shelf_item_id, title=line.title,
        ))  # fmt: skip


def order_released(*, order_id: int) -> None:
    """A reservation ended unpaid: its units are back, so the room sees the stock rise."""
    from orders import selectors
    from orders.models import Order

    order = Order.objects.prefetch_related("lines").filter(pk=order_id).first()
    if order is None:
        return
    for line in order.lines.all():
        left = selectors.stock_left(item_id=line.shelf_item_id, sale_id=line.flash_sale_id, default=0)
        stock_changed(room_id=order.room_id, item_id=line.shelf_item_id, sale_id=line.flash_sale_id, left=left)


def order_changed(*, order_id: int) -> None:
    """Hook for anything that shows an order live. Pages poll `/orders/<number>/status`."""


def money(value: Decimal) -> str:
    return f"{value:.2f}"
