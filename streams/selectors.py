"""Reads for rooms: what the home page, room pages, studio and snapshots show."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from accounts.models import HostProfile, User
from catalog.models import ProductImage
from streams.models import ChatMessage, Follow, Notification, Room, RoomBan, RoomModerator, RoomMute, ShelfItem

CHAT_BACKLOG = 40


class Role:
    HOST = "host"
    MODERATOR = "moderator"
    VIEWER = "viewer"
    ANONYMOUS = "anonymous"
    BANNED = "banned"


def rooms_live() -> QuerySet[Room]:
    """Live rooms, most watched first (peak viewers, refreshed by the counts ticker)."""
    return (
        Room.objects.filter(status=Room.Status.LIVE)
        .select_related("host__user")
        .order_by("-peak_viewers", "-started_at")
    )


def rooms_upcoming() -> QuerySet[Room]:
    return Room.objects.filter(status=Room.Status.SCHEDULED).select_related("host__user").order_by("scheduled_start")


def rooms_replays() -> QuerySet[Room]:
    return Room.objects.filter(status=Room.Status.ENDED).select_related("host__user").order_by("-ended_at")


def rooms_of_host(*, host: HostProfile) -> QuerySet[Room]:
    return host.rooms.annotate(shelf_count=Count("shelf", filter=Q(shelf__is_active=True))).order_by(
        "-scheduled_start"
    )


def room_get(*, room_id: int) -> Room | None:
    return Room.objects.select_related("host__user").filter(pk=room_id).first()


def shelf_items(*, room_id: int) -> QuerySet[ShelfItem]:
    """Active shelf items with what a product card shows, in ONE query (the pin hot path)."""
    first_image = ProductImage.objects.filter(product_id=OuterRef("product_id")).order_by("position", "id")
    return (
        ShelfItem.objects.filter(room_id=room_id, is_active=True)
        .select_related("product__retailer")
        .annotate(first_image=Subquery(first_image.values("url")[:1]))
    )


def shelf_item(*, room_id: int, item_id: int) -> ShelfItem | None:
    return shelf_items(room_id=room_id).filter(pk=item_id).first()


def chat_recent(*, room_id: int, limit: int = CHAT_BACKLOG) -> list[ChatMessage]:
    rows = (
        ChatMessage.objects.filter(room_id=room_id, removed_at__isnull=True)
        .select_related("user")
        .order_by("-created_at", "-id")[:limit]
    )
    return list(reversed(rows))


def room_role(*, room: Room, user: User | None) -> str:
    """The user's role in the room, read from the database every time it is asked."""
    if user is None or not user.is_authenticated:
        return Role.ANONYMOUS
    if room.host.user_id == user.pk:
        return Role.HOST
    if RoomBan.objects.filter(room_id=room.pk, user_id=user.pk).exists():
        return Role.BANNED
    if RoomModerator.objects.filter(room_id=room.pk, user_id=user.pk).exists():
        return Role.MODERATOR
    return Role.VIEWER


def is_banned(*, room_id: int, user_id: int) -> bool:
    return RoomBan.objects.filter(room_id=room_id, user_id=user_id).exists()


def muted_until(*, room_id: int, user_id: int):
    mute = RoomMute.objects.filter(room_id=room_id, user_id=user_id, until__gt=timezone.now()).first()
    return mute.until if mute else None


def is_following(*, user: User | None, host_id: int) -> bool:
    if user is None or not user.is_authenticated:
        return False
    return Follow.objects.filter(user_id=user.pk, host_id=host_id).exists()


def followers_count(*, host_id: int) -> int:
    return Follow.objects.filter(host_id=host_id).count()


def chat_per_minute(*, room_id: int) -> int:
    since = timezone.now() - timedelta(minutes=1)
    return ChatMessage.objects.filter(room_id=room_id, created_at__gte=since).count()


def room_moderators(*, room: Room) -> QuerySet[RoomModerator]:
    return room.moderators.select_related("user").order_by("added_at")


def room_bans(*, room: Room) -> QuerySet[RoomBan]:
    return room.bans.select_related("user").order_by("-created_at")


def room_mutes_active(*, room: Room) -> QuerySet[RoomMute]:
    return room.mutes.filter(until__gt=timezone.now()).select_related("user")


def notifications_for(*, user: User, limit: int = 30) -> list[Notification]:
    return list(Notification.objects.filter(user=user).select_related("room")[:limit])


def notifications_unread(*, user: User) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def room_me(*, room_id: int, user_id: int | None) -> dict | None:
    """Who the socket's user is in the room: role, mute, follow."""
    room = room_get(room_id=room_id)
    if room is None:
        return None
    user = User.objects.filter(pk=user_id).first() if user_id else None
    role = room_role(room=room, user=user)
    until = muted_until(room_id=room_id, user_id=user.pk) if user else None
    return {
        "id": user.pk if user else None,
        "name": user.public_name if user else None,
        "role": role,
        "muted_until": until.isoformat() if until else None,
        "following": is_following(user=user, host_id=room.host_id),
    }


ANONYMOUS_ME = {"id": None, "name": None, "role": Role.ANONYMOUS, "muted_until": None, "following": False}


def room_snapshot(*, room_id: int, user_id: int | None) -> dict | None:
    """The whole state a client needs, with the version it was read at."""
    public = room_snapshot_public(room_id=room_id)
    if public is None:
        return None
    return {**public, "me": room_me(room_id=room_id, user_id=user_id) if user_id else ANONYMOUS_ME}


def room_snapshot_public(*, room_id: int) -> dict | None:
    """The snapshot without `me`: the same for every viewer, so a process can share it."""
    from streams import events, fanout

    room = room_get(room_id=room_id)
    if room is None:
        return None
    shelf = list(shelf_items(room_id=room_id))
    pinned = next((item for item in shelf if item.pk == room.pinned_item_id), None)
    return events.ev_snapshot(
        v=room.version,
        room={**events.room_info(room), "followers": followers_count(host_id=room.host_id)},
        pinned=events.item_card(pinned) if pinned else None,
        shelf=[events.item_card(item) for item in shelf],
        chat=[events.chat_payload(m) for m in chat_recent(room_id=room_id)],
        viewers=fanout.viewers_total(room_id=room_id) or 0,
        likes=fanout.likes_get(room_id=room_id, base=room.likes),
        me=None,
    )
