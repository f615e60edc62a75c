"""Room events: small JSON dicts with a `type`, one builder each (see docs/protocol.md).

Every event a client receives carries `v`, the room's state version. Events that change
the room's state (pin, unpin, shelf, status, slow mode) carry the version their change
produced; chat and counters carry the version current when they were sent and never
bump it.
"""

from __future__ import annotations

from datetime import datetime

from streams.models import ChatMessage, Room, ShelfItem

LOW_STOCK = 10


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def stock_state(stock: int) -> str:
    if stock <= 0:
        return "sold_out"
    if stock <= LOW_STOCK:
        return "low"
    return "in_stock"


def item_card(item: ShelfItem) -> dict:
    """What a viewer sees of a shelf item: the pinned card and each shelf row."""
    product = item.product
    image = getattr(item, "first_image", None)  # annotated by selectors.shelf_items
    if image is None:
        first = product.images.first()
        image = first.url if first else ""
    return {
        "id": item.pk,
        "product_id": product.pk,
        "title": product.title,
        "brand": product.brand,
        "image": image,
        "live_price": str(item.live_price),
        "list_price": str(product.list_price),
        "currency": product.currency,
        "stock": product.retailer_stock,
        "stock_state": stock_state(product.retailer_stock),
        "retailer": product.retailer.name,
        "url": f"/products/{product.pk}/",
        "position": item.position,
        "per_user_limit": item.per_user_limit,
    }


def room_info(room: Room) -> dict:
    return {
        "id": room.pk,
        "title": room.title,
        "status": room.status,
        "publishing": room.publishing,
        "host": {"id": room.host.user_id, "handle": room.host.handle, "name": room.host.user.public_name},
        "slow_mode_seconds": room.slow_mode_seconds,
        "scheduled_start": _iso(room.scheduled_start),
        "started_at": _iso(room.started_at),
        "ended_at": _iso(room.ended_at),
    }


def chat_payload(message: ChatMessage) -> dict:
    return {
        "id": message.pk,
        "user": {"id": message.user_id, "name": message.user.public_name},
        "text": message.text,
        "at": _iso(message.created_at),
    }


# --- server -> client ------------------------------------------------------------------


def ev_snapshot(*, v: int, room: dict, pinned: dict | None, shelf: list[dict], chat: list[dict],
                viewers: int, likes: int, me: dict) -> dict:  # fmt: skip
    return {
        "type": "snapshot", "v": v, "room": room, "pinned": pinned, "shelf": shelf, "chat": chat,
        "viewers": viewers, "likes": likes, "me": me,
    }  # fmt: skip


def ev_pin(*, v: int, item: dict, pin_id: int, at: datetime, sent: float | None = None) -> dict:
    event = {"type": "pin", "v": v, "item": item, "pin_id": pin_id, "at": _iso(at)}
    if sent is not None:
        event["sent"] = sent
    return event


def ev_unpin(*, v: int) -> dict:
    return {"type": "unpin", "v": v}


def ev_shelf(*, v: int, shelf: list[dict]) -> dict:
    return {"type": "shelf", "v": v, "shelf": shelf}


def ev_status(*, v: int, status: str, publishing: bool) -> dict:
    return {"type": "status", "v": v, "status": status, "publishing": publishing}


def ev_slow_mode(*, v: int, seconds: int) -> dict:
    return {"type": "slow_mode", "v": v, "seconds": seconds}


def ev_chat(*, v: int, message: dict) -> dict:
    return {"type": "chat", "v": v, "message": message}


def ev_chat_removed(*, v: int, message_id: int) -> dict:
    return {"type": "chat.removed", "v": v, "id": message_id}


def ev_counts(*, v: int, viewers: int, likes: int) -> dict:
    return {"type": "counts", "v": v, "viewers": viewers, "likes": likes}


def ev_role(*, v: int, role: str) -> dict:
    return {"type": "role", "v": v, "role": role}


def ev_ack(*, v: int, ref: str | None, **extra) -> dict:
    return {"type": "ack", "v": v, "ref": ref, **extra}


def ev_error(*, v: int, code: str, message: str, ref: str | None = None) -> dict:
    return {"type": "error", "v": v, "code": code, "message": message, "ref": ref}


# --- control messages between processes (never sent to clients) ------------------------


def ctl_kick(*, user_id: int, code: int, reason: str) -> dict:
    """Close every socket of `user_id` in the room, in every process."""
    return {"op": "kick", "user_id": user_id, "code": code, "reason": reason}


def ctl_role(*, user_id: int) -> dict:
    """`user_id`'s role in the room changed: tell their open sockets."""
    return {"op": "role", "user_id": user_id}
