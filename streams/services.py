"""Writes for live rooms. Every state change bumps Room.version and is broadcast after commit.

Lifecycle (the media hooks call these): room_go_live, room_end, room_set_publishing,
room_rotate_stream_key. Studio and the room socket call the rest. Each function is
keyword-only, owns its transaction, raises RoomError(code, message) for anything a user
can get wrong, and changes nothing when it raises.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.models import HostProfile, User
from catalog.models import Product
from streams import events, fanout, selectors
from streams.models import (
    ChatMessage,
    Follow,
    Notification,
    PinEvent,
    Room,
    RoomBan,
    RoomModerator,
    RoomMute,
    ShelfItem,
    new_stream_key,
)
from streams.selectors import Role

CHAT_MAX_LENGTH = 200
CHAT_BURST = 5  # messages per user per room ...
CHAT_WINDOW = 10.0  # ... in this many seconds
LIKES_PER_MESSAGE = 50
MUTE_MAX_MINUTES = 7 * 24 * 60
SLOW_MODE_MAX = 300
SHELF_MAX = 100
CLOSE_BANNED = 4003


class RoomError(Exception):
    """A refusal a user can understand: `code` for programs, `message` for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# --- helpers -----------------------------------------------------------------------------


def _bump_version(room_id: int) -> int:
    """UPDATE ... SET version = version + 1 RETURNING version (inside the caller's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Room._meta.db_table} SET version = version + 1 WHERE id = %s RETURNING version",  # noqa: S608
            [room_id],
        )
        return int(cursor.fetchone()[0])


def _after_commit(room_id: int, event: dict) -> None:
    transaction.on_commit(lambda: fanout.publish(room_id, event))


def _locked(room: Room) -> Room:
    """The room row, locked (only the room's row: `of=self`), with its host for permission checks."""
    locked = Room.objects.select_for_update(of=("self",)).select_related("host__user").filter(pk=room.pk).first()
    if locked is None:
        raise RoomError("not_found", "This room no longer exists.")
    return locked


def _shelf_payload(room_id: int) -> list[dict]:
    return [events.item_card(item) for item in selectors.shelf_items(room_id=room_id)]


def require_moderator(*, room: Room, user: User | None) -> str:
    """The host or one of the room's moderators; read from the database on every call."""
    role = selectors.room_role(room=room, user=user)
    if role not in (Role.HOST, Role.MODERATOR):
        raise RoomError("forbidden", "Only the host and the room's moderators can do that.")
    return role


def require_host(*, room: Room, user: User | None) -> None:
    if selectors.room_role(room=room, user=user) != Role.HOST:
        raise RoomError("forbidden", "Only the room's host can do that.")


# --- lifecycle ---------------------------------------------------------------------------


def room_create(
    *, host: HostProfile, title: str, scheduled_start: datetime, description: str = "", cover=None
) -> Room:
    if not host.is_approved:
        raise RoomError("not_host", "Your host profile has not been approved yet.")
    title = (title or "").strip()
    if not title:
        raise RoomError("invalid", "Give the room a title.")
    if scheduled_start is None or timezone.is_naive(scheduled_start):
        raise RoomError("invalid", "Give the room a start time.")
    room = Room(host=host, title=title[:120], description=(description or "").strip()[:500],
                scheduled_start=scheduled_start)  # fmt: skip
    if cover:
        room.cover = cover
    room.full_clean()
    room.save()
    return room


def room_update(*, room: Room, title: str, scheduled_start: datetime, description: str = "", cover=None) -> Room:
    title = (title or "").strip()
    if not title:
        raise RoomError("invalid", "Give the room a title.")
    with transaction.atomic():
        room = _locked(room)
        room.title = title[:120]
        room.description = (description or "").strip()[:500]
        if room.status == Room.Status.SCHEDULED and scheduled_start:
            room.scheduled_start = scheduled_start
        if cover:
            room.cover = cover
        room.full_clean()
        room.save()
    return room


def room_go_live(*, room: Room, by: User | None = None) -> Room:
    """scheduled -> live: tells viewers and followers. Idempotent when already live."""
    with transaction.atomic():
        room = _locked(room)
        if room.status == Room.Status.LIVE:
            return room
        if room.status == Room.Status.ENDED:
            raise RoomError("ended", "This room has ended; schedule a new one.")
        room.status = Room.Status.LIVE
        room.started_at = timezone.now()
        room.save(update_fields=["status", "started_at"])
        room.version = _bump_version(room.pk)
        follower_ids = list(Follow.objects.filter(host_id=room.host_id).values_list("user_id", flat=True))
        Notification.objects.bulk_create(
            [
                Notification(
                    user_id=user_id,
                    kind=Notification.Kind.HOST_LIVE,
                    room=room,
                    text=f"@{room.host.handle} is live: {room.title}",
                    url=room.get_absolute_url(),
                )
                for user_id in follower_ids
            ],
            batch_size=500,
        )
        _after_commit(room.pk, events.ev_status(v=room.version, status=room.status, publishing=room.publishing))
    return room


def room_end(*, room: Room, by: User | None = None) -> Room:
    """live (or scheduled) -> ended: closes the open pin. Idempotent when already ended."""
    with transaction.atomic():
        room = _locked(room)
        if room.status == Room.Status.ENDED:
            return room
        now = timezone.now()
        PinEvent.objects.filter(room_id=room.pk, unpinned_at__isnull=True).update(unpinned_at=now)
        room.status = Room.Status.ENDED
        room.ended_at = now
        room.pinned_item = None
        room.publishing = False
        room.likes = fanout.likes_get(room_id=room.pk, base=room.likes)
        room.save(update_fields=["status", "ended_at", "pinned_item", "publishing", "likes"])
        room.version = _bump_version(room.pk)
        _after_commit(room.pk, events.ev_status(v=room.version, status=room.status, publishing=False))
    return room


def room_set_publishing(*, room: Room, publishing: bool) -> Room:
    with transaction.atomic():
        room = _locked(room)
        if room.publishing == publishing:
            return room
        room.publishing = publishing
        room.save(update_fields=["publishing"])
        room.version = _bump_version(room.pk)
        _after_commit(room.pk, events.ev_status(v=room.version, status=room.status, publishing=publishing))
    return room


def room_rotate_stream_key(*, room: Room) -> Room:
    with transaction.atomic():
        room = _locked(room)
        room.stream_key = new_stream_key()
        room.save(update_fields=["stream_key"])
    return room


def room_record_counts(*, room_id: int, viewers: int, likes: int) -> None:
    """Keep the peak viewer count and the likes total in the database (ticker, at most every 2 s)."""
    Room.objects.filter(pk=room_id).update(
        peak_viewers=Greatest(F("peak_viewers"), viewers), likes=Greatest(F("likes"), likes)
    )


# --- shelf and pins ----------------------------------------------------------------------


def _price(value) -> Decimal:
    try:
        price = Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError, TypeError):
        raise RoomError("invalid_price", "Enter the live price as a number, like 199.00.")
    if not price.is_finite() or price <= 0:
        raise RoomError("invalid_price", "The live price must be more than zero.")
    return price


def _check_price(product: Product, price: Decimal) -> None:
    if price > product.list_price:
        raise RoomError("price_above_list", f"The live price cannot be above the list price ({product.list_price}).")
    if price < product.live_price_floor:
        raise RoomError(
            "price_below_floor", f"The live price cannot be below {product.live_price_floor} for this product."
        )


def shelf_add(
    *, room: Room, product_id: int, live_price, by: User, per_user_limit: int = 5, position: int | None = None
) -> ShelfItem:
    require_moderator(room=room, user=by)
    if room.status == Room.Status.ENDED:
        raise RoomError("ended", "This room has ended.")
    product = Product.objects.select_related("retailer").filter(pk=product_id).first()
    if product is None or not product.can_be_sold_live:
        raise RoomError("not_sellable", "That product cannot be sold in live rooms.")
    price = _price(live_price)
    _check_price(product, price)
    if not 1 <= int(per_user_limit) <= 99:
        raise RoomError("invalid", "The per-buyer limit must be between 1 and 99.")
    with transaction.atomic():
        room = _locked(room)
        active = ShelfItem.objects.filter(room_id=room.pk, is_active=True)
        if active.count() >= SHELF_MAX:
            raise RoomError("shelf_full", f"A shelf holds at most {SHELF_MAX} products.")
        if position is None:
            position = (max(active.values_list("position", flat=True), default=0) or 0) + 1
        item, created = ShelfItem.objects.get_or_create(
            room=room, product=product,
            defaults={"live_price": price, "per_user_limit": per_user_limit, "position": position},
        )  # fmt: skip
        if not created:
            if item.is_active:
                raise RoomError("duplicate", "That product is already on the shelf.")
            item.is_active = True
            item.live_price, item.per_user_limit, item.position = price, per_user_limit, position
            item.save(update_fields=["is_active", "live_price", "per_user_limit", "position"])
        v = _bump_version(room.pk)
        _after_commit(room.pk, events.ev_shelf(v=v, shelf=_shelf_payload(room.pk)))
    return item


def shelf_update(
    *, item: ShelfItem, by: User, live_price=None, position: int | None = None, per_user_limit: int | None = None
) -> ShelfItem:
    room = item.room
    require_moderator(room=room, user=by)
    with transaction.atomic():
        _locked(room)
        item = ShelfItem.objects.select_for_update().select_related("product__retailer").get(pk=item.pk)
        if live_price is not None:
            price = _price(live_price)
            _check_price(item.product, price)
            item.live_price = price
        if position is not None:
            item.position = max(0, min(int(position), 32000))
        if per_user_limit is not None:
            if not 1 <= int(per_user_limit) <= 99:
                raise RoomError("invalid", "The per-buyer limit must be between 1 and 99.")
            item.per_user_limit = int(per_user_limit)
        item.save(update_fields=["live_price", "position", "per_user_limit"])
        v = _bump_version(room.pk)
        shelf = _shelf_payload(room.pk)
        _after_commit(room.pk, events.ev_shelf(v=v, shelf=shelf))
        if room.pinned_item_id == item.pk:
            fresh = selectors.shelf_item(room_id=room.pk, item_id=item.pk)
            pin = PinEvent.objects.filter(room_id=room.pk, unpinned_at__isnull=True).order_by("-pinned_at").first()
            if fresh and pin:
                _after_commit(
                    room.pk, events.ev_pin(v=v, item=events.item_card(fresh), pin_id=pin.pk, at=pin.pinned_at)
                )
    return item


def shelf_remove(*, item: ShelfItem, by: User) -> None:
    room = item.room
    require_moderator(room=room, user=by)
    with transaction.atomic():
        room = _locked(room)
        ShelfItem.objects.filter(pk=item.pk).update(is_active=False)
        if room.pinned_item_id == item.pk:
            PinEvent.objects.filter(room_id=room.pk, unpinned_at__isnull=True).update(unpinned_at=timezone.now())
            room.pinned_item = None
            room.save(update_fields=["pinned_item"])
        v = _bump_version(room.pk)
        _after_commit(room.pk, events.ev_shelf(v=v, shelf=_shelf_payload(room.pk)))
        if room.pinned_item_id is None:
            _after_commit(room.pk, events.ev_unpin(v=v))


def room_pin(*, room: Room, item_id: int, by: User) -> PinEvent:
    """Pin one shelf item (the previous pin closes); the pin history is kept.

    The hot path of a live show: the room row is locked first and the permission is
    checked against the locked row, so it takes few round trips to the database.
    """
    with transaction.atomic():
        room = _locked(room)
        require_moderator(room=room, user=by)
        if room.status == Room.Status.ENDED:
            raise RoomError("ended", "This room has ended.")
        item = selectors.shelf_item(room_id=room.pk, item_id=item_id)
        if item is None:
            raise RoomError("not_on_shelf", "That product is not on this room's shelf.")
        now = timezone.now()
        PinEvent.objects.filter(room_id=room.pk, unpinned_at__isnull=True).update(unpinned_at=now)
        pin = PinEvent.objects.create(room=room, item=item, pinned_by=by, pinned_at=now)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Room._meta.db_table} SET pinned_item_id = %s, version = version + 1 "  # noqa: S608
                "WHERE id = %s RETURNING version",
                [item.pk, room.pk],
            )
            v = int(cursor.fetchone()[0])
        _after_commit(
            room.pk, events.ev_pin(v=v, item=events.item_card(item), pin_id=pin.pk, at=now, sent=time.time())
        )
    return pin


def room_unpin(*, room: Room, by: User) -> None:
    require_moderator(room=room, user=by)
    with transaction.atomic():
        room = _locked(room)
        if room.pinned_item_id is None:
            return
        PinEvent.objects.filter(room_id=room.pk, unpinned_at__isnull=True).update(unpinned_at=timezone.now())
        room.pinned_item = None
        room.save(update_fields=["pinned_item"])
        v = _bump_version(room.pk)
        _after_commit(room.pk, events.ev_unpin(v=v))


# --- chat and moderation -----------------------------------------------------------------


def chat_post(*, room: Room, user: User, text) -> ChatMessage:
    if user is None or not user.is_authenticated:
        raise RoomError("login_required", "Log in to chat.")
    if not isinstance(text, str):
        raise RoomError("invalid", "A chat message is text.")
    text = " ".join(text.split())
    if not text:
        raise RoomError("empty", "Type a message first.")
    if len(text) > CHAT_MAX_LENGTH:
        raise RoomError("too_long", f"Keep messages under {CHAT_MAX_LENGTH} characters.")
    room = Room.objects.select_related("host").get(pk=room.pk)
    if room.status == Room.Status.ENDED:
        raise RoomError("ended", "This room has ended; chat is closed.")
    role = selectors.room_role(room=room, user=user)
    if role == Role.BANNED:
        raise RoomError("banned", "You have been removed from this room.")
    until = selectors.muted_until(room_id=room.pk, user_id=user.pk)
    if until is not None:
        raise RoomError("muted", f"You are muted until {timezone.localtime(until):%H:%M}.")
    privileged = role in (Role.HOST, Role.MODERATOR)
    if not privileged:
        if not fanout.hit(key=f"chat:{room.pk}:{user.pk}", limit=CHAT_BURST, window=CHAT_WINDOW):
            raise RoomError("rate_limited", "You are sending messages too fast. Wait a few seconds.")
        if room.slow_mode_seconds and not fanout.hold(key=f"slow:{room.pk}:{user.pk}", seconds=room.slow_mode_seconds):
            raise RoomError("slow_mode", f"Slow mode is on: one message every {room.slow_mode_seconds} seconds.")
    with transaction.atomic():
        message = ChatMessage.objects.create(room=room, user=user, text=text)
        message.user = user
        _after_commit(room.pk, events.ev_chat(v=room.version, message=events.chat_payload(message)))
    return message


def chat_remove(*, room: Room, message_id: int, by: User) -> None:
    require_moderator(room=room, user=by)
    with transaction.atomic():
        updated = ChatMessage.objects.filter(room_id=room.pk, pk=message_id, removed_at__isnull=True).update(
            removed_at=timezone.now(), removed_by=by
        )
        if not updated:
            if not ChatMessage.objects.filter(room_id=room.pk, pk=message_id).exists():
                raise RoomError("not_found", "That message is not in this room.")
            return
        v = Room.objects.filter(pk=room.pk).values_list("version", flat=True).first()
        _after_commit(room.pk, events.ev_chat_removed(v=v, message_id=message_id))


def _target(room: Room, user_id) -> User:
    try:
        user = User.objects.filter(pk=int(user_id)).first()
    except (TypeError, ValueError):
        user = None
    if user is None:
        raise RoomError("not_found", "No such user.")
    if user.pk == room.host.user_id:
        raise RoomError("forbidden", "The host cannot be muted or banned in their own room.")
    return user


def user_mute(*, room: Room, user_id, minutes, by: User) -> RoomMute:
    role = require_moderator(room=room, user=by)
    try:
        minutes = int(minutes)
    except (TypeError, ValueError):
        raise RoomError("invalid", "Give the mute length in minutes.")
    if not 1 <= minutes <= MUTE_MAX_MINUTES:
        raise RoomError("invalid", f"Mute for 1 to {MUTE_MAX_MINUTES} minutes.")
    target = _target(room, user_id)
    if role == Role.MODERATOR and RoomModerator.objects.filter(room=room, user=target).exists():
        raise RoomError("forbidden", "Moderators cannot mute each other; ask the host.")
    until = timezone.now() + timedelta(minutes=minutes)
    mute, _ = RoomMute.objects.update_or_create(room=room, user=target, defaults={"until": until, "muted_by": by})
    transaction.on_commit(lambda: fanout.publish_control(room.pk, events.ctl_role(user_id=target.pk)))
    return mute


def user_unmute(*, room: Room, user_id, by: User) -> None:
    require_moderator(room=room, user=by)
    RoomMute.objects.filter(room=room, user_id=user_id).delete()
    transaction.on_commit(lambda: fanout.publish_control(room.pk, events.ctl_role(user_id=int(user_id))))


def user_ban(*, room: Room, user_id, by: User) -> RoomBan:
    """Ban from the room: their open sockets in every process close, and they cannot rejoin."""
    role = require_moderator(room=room, user=by)
    target = _target(room, user_id)
    if role == Role.MODERATOR and RoomModerator.objects.filter(room=room, user=target).exists():
        raise RoomError("forbidden", "Moderators cannot ban each other; ask the host.")
    with transaction.atomic():
        RoomModerator.objects.filter(room=room, user=target).delete()
        ban, _ = RoomBan.objects.get_or_create(room=room, user=target, defaults={"banned_by": by})
        transaction.on_commit(
            lambda: fanout.publish_control(
                room.pk, events.ctl_kick(user_id=target.pk, code=CLOSE_BANNED, reason="banned")
            )
        )
    return ban


def user_unban(*, room: Room, user_id, by: User) -> None:
    require_moderator(room=room, user=by)
    RoomBan.objects.filter(room=room, user_id=user_id).delete()


def room_set_slow_mode(*, room: Room, seconds, by: User) -> Room:
    require_moderator(room=room, user=by)
    try:
        seconds = int(seconds)
    except (TypeError, ValueError):
        raise RoomError("invalid", "Slow mode is a number of seconds.")
    if not 0 <= seconds <= SLOW_MODE_MAX:
        raise RoomError("invalid", f"Slow mode is 0 (off) to {SLOW_MODE_MAX} seconds.")
    with transaction.atomic():
        room = _locked(room)
        room.slow_mode_seconds = seconds
        room.save(update_fields=["slow_mode_seconds"])
        room.version = _bump_version(room.pk)
        _after_commit(room.pk, events.ev_slow_mode(v=room.version, seconds=seconds))
    return room


def moderator_add(*, room: Room, username: str, by: User) -> RoomModerator:
    require_host(room=room, user=by)
    user = User.objects.filter(username__iexact=(username or "").strip()).first()
    if user is None:
        raise RoomError("not_found", "No user with that username.")
    if user.pk == room.host.user_id:
        raise RoomError("invalid", "You already run this room.")
    if RoomBan.objects.filter(room=room, user=user).exists():
        raise RoomError("invalid", "That user is banned from this room; unban them first.")
    mod, _ = RoomModerator.objects.get_or_create(room=room, user=user)
    transaction.on_commit(lambda: fanout.publish_control(room.pk, events.ctl_role(user_id=user.pk)))
    return mod


def moderator_remove(*, room: Room, user_id, by: User) -> None:
    """Takes the rights away at once, on open sockets too (every privileged message re-reads them)."""
    require_host(room=room, user=by)
    RoomModerator.objects.filter(room=room, user_id=user_id).delete()
    transaction.on_commit(lambda: fanout.publish_control(room.pk, events.ctl_role(user_id=int(user_id))))


# --- viewers -----------------------------------------------------------------------------


def room_like(*, room: Room, user: User, count) -> int:
    if user is None or not user.is_authenticated:
        raise RoomError("login_required", "Log in to like.")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= LIKES_PER_MESSAGE:
        raise RoomError("invalid", f"Send between 1 and {LIKES_PER_MESSAGE} likes at a time.")
    if room.status == Room.Status.ENDED:
        raise RoomError("ended", "This room has ended.")
    return fanout.likes_add(room_id=room.pk, count=count, base=room.likes)


def follow_set(*, user: User, host: HostProfile, follow: bool) -> bool:
    if user is None or not user.is_authenticated:
        raise RoomError("login_required", "Log in to follow hosts.")
    if host.user_id == user.pk:
        raise RoomError("invalid", "You cannot follow yourself.")
    if follow:
        Follow.objects.get_or_create(user=user, host=host)
    else:
        Follow.objects.filter(user=user, host=host).delete()
    return follow


def notifications_mark_read(*, user: User) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).update(read_at=timezone.now())
