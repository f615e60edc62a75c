"""Fulfilment's events to the buyer. Run after commit; at most once (pages re-read the truth).

The order page polls `/orders/<number>/status` and re-renders on a new step. In the room,
the buyer alone gets a toast: the event travels as a hub control message addressed to
one user (`op: "send"`), which each web process hands only to that user's sockets.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def ev_order_update(*, number: str, status: str, status_label: str, text: str, url: str) -> dict:
    return {
        "type": "order.update",
        "number": number,
        "status": status,
        "status_label": status_label,
        "text": text[:200],
        "url": url,
    }


def order_changed(*, order_id: int) -> None:
    from orders import live as order_live

    try:
        order_live.order_changed(order_id=order_id)
    except Exception:
        log.exception("order_changed hook for %s failed", order_id)


def buyer_toast(*, order_id: int, text: str) -> None:
    from orders.models import Order
    from streams import fanout

    order = Order.objects.filter(pk=order_id).only("number", "status", "room_id", "buyer_id").first()
    if order is None:
        return
    event = ev_order_update(
        number=order.number,
        status=order.status,
        status_label=order.get_status_display(),
        text=text,
        url=order.get_absolute_url(),
    )
    try:
        fanout.publish_control(order.room_id, {"op": "send", "user_id": order.buyer_id, "event": event})
    except Exception:
        log.exception("toast for order %s failed", order_id)
