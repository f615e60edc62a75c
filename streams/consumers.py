"""Websocket consumers: the live room (see docs/protocol.md) and a small hello probe.

The room consumer is thin: it counts frames (flood), hands each to the validation layer
(`inbound.parse_message`: size, JSON, depth, text, numbers, a string `type`), looks up the
handler for the message's `type` and lets the handler call one service. It does not use
the channel layer: sockets register with the process's fan-out hub (streams.fanout),
which holds one Redis subscription per room and writes each frame, serialised once, to
every local socket.

Other apps add message types with `register`, e.g. in their AppConfig.ready():

    from streams.consumers import register

    @register("buy")
    async def buy(consumer, payload):   # payload is the parsed JSON object
        user = consumer.scope["user"]   # check it yourself: AnonymousUser when logged out
        order = await database_sync_to_async(order_place)(..., room_id=consumer.room_id)
        consumer.reply({"type": "buy.result", ...}, ref=payload.get("ref"))

A handler raises streams.services.RoomError(code, message) to refuse; the consumer turns
it into an `error` frame carrying the request's `ref`. Any other exception is logged and
answered with `server_error` (`unavailable` when Redis failed); the socket stays open. A
failure outside a handler closes the socket with 1011, never without a close frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable

import redis
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

import inbound
from streams import events, fanout, selectors, services
from streams.models import Room
from streams.selectors import ANONYMOUS_ME, Role
from streams.services import RoomError

log = logging.getLogger(__name__)

Handler = Callable[["RoomConsumer", dict], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}

FLOOD_MESSAGES = 20  # more than this many frames ...
FLOOD_WINDOW = 1.0  # ... within this many seconds closes the socket
CLOSE_NO_ROOM = 4404
CLOSE_BANNED = services.CLOSE_BANNED
CLOSE_FLOOD = 4029
CLOSE_TOO_BIG = 1009
CLOSE_SERVER_ERROR = 1011  # the server failed; reconnect
CLOSE_TRY_AGAIN = 1013  # Redis is unreachable: live updates are unavailable; reconnect with backoff
UNAVAILABLE = "Live updates are reconnecting; try again in a moment."


def register(message_type: str) -> Callable[[Handler], Handler]:
    """Add a handler for client messages of `message_type` (see the module docstring)."""

    def decorator(handler: Handler) -> Handler:
        HANDLERS[message_type] = handler
        return handler

    return decorator


class HelloConsumer(AsyncWebsocketConsumer):
    """Answers who the socket belongs to: proves session auth and origin checks end to end."""

    async def connect(self):
        await self.accept()
        user = self.scope["user"]
        await self.send(
            text_data=json.dumps({"type": "hello", "user": user.username if user.is_authenticated else None})
        )


class RoomConsumer(AsyncWebsocketConsumer):
    # No channel layer: no per-socket Redis channel, no per-socket group membership.
    channel_layer_alias = "__room_fanout_has_no_channel_layer__"

    room_id: int
    user_id: int | None

    async def dispatch(self, message):
        """Channels' dispatch, without its thread hop to close stale DB connections on every
        frame: handlers that touch the database go through database_sync_to_async, which
        closes stale connections itself. Thousands of sockets connect and send; the hop
        was most of the per-socket cost."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        try:
            await handler(message)
        except (StopConsumer, asyncio.CancelledError):
            raise
        except Exception:
            # Whatever failed, the client gets a close frame it can act on, never a dropped
            # connection (1006): 1011 says "reconnect".
            room_id = getattr(self, "room_id", "?")
            log.exception("room %s: %s failed; closing with %s", room_id, message["type"], CLOSE_SERVER_ERROR)
            with contextlib.suppress(Exception):
                await self.close(CLOSE_SERVER_ERROR)
            await self.disconnect(CLOSE_SERVER_ERROR)

    async def websocket_disconnect(self, message):
        await self.disconnect(message.get("code", 1000))
        raise StopConsumer()

    async def connect(self):
        self.room_id = int(self.scope["url_route"]["kwargs"]["room_id"])
        user = self.scope.get("user")
        self.user_id = user.pk if user is not None and user.is_authenticated else None
        self.ready = False
        self.joined = False
        self.early: list[dict] = []
        self.hits: list[float] = []
        send = _frame_send(self.base_send)
        self.outbox = fanout.Outbox(send, self._too_slow, fanout.direct_writer(send))
        self.hub = fanout.get_hub()
        await self.accept()
        try:
            await self._join()
        except (redis.RedisError, OSError):
            log.warning("room %s: Redis unreachable; the client will reconnect", self.room_id, exc_info=True)
            await self._refuse(CLOSE_TRY_AGAIN, "unavailable", UNAVAILABLE)

    async def _join(self) -> None:
        if self.user_id is not None:
            me = await database_sync_to_async(selectors.room_me)(room_id=self.room_id, user_id=self.user_id)
            if me is None:
                await self._refuse(CLOSE_NO_ROOM, "not_found", "This room does not exist.")
                return
            if me["role"] == Role.BANNED:
                await self._refuse(CLOSE_BANNED, "banned", "You have been removed from this room.")
                return
        # Subscribe FIRST, then read the snapshot: nothing published in between is lost.
        await self.hub.join(self.room_id, self)
        self.joined = True
        if not await self.send_snapshot():
            await self._refuse(CLOSE_NO_ROOM, "not_found", "This room does not exist.")

    async def _refuse(self, code: int, error: str, message: str) -> None:
        self.reply(events.ev_error(v=0, code=error, message=message))
        await self.close(code)
        if self.joined:
            self.joined = False
            await self.hub.leave(self.room_id, self)

    async def disconnect(self, code):
        if getattr(self, "joined", False):
            self.joined = False
            await self.hub.leave(self.room_id, self)

    # --- delivery (called by the hub) ---------------------------------------------------

    def push(self, message: dict) -> None:
        if self.ready:
            self.outbox.push(message)
        else:
            self.early.append(message)

    def reply(self, event: dict, *, ref=None) -> None:
        """Send `event` to this socket only, in order with the room's frames."""
        if ref is not None:
            event = {**event, "ref": ref}
        self.outbox.push(fanout.send_text(fanout.encode(event)))

    def _too_slow(self) -> None:
        self.hub.loop.create_task(self.close(fanout.CLOSE_TOO_SLOW))

    async def send_snapshot(self, *, ref=None) -> bool:
        public = await self.hub.public_snapshot(self.room_id, database_sync_to_async(selectors.room_snapshot_public))
        if public is None:
            return False
        if self.user_id is None and ref is None:
            # Every anonymous viewer gets the same frame: serialise it once per snapshot.
            self.outbox.push({"type": "websocket.send", "text": self.hub.anonymous_frame(self.room_id, public)})
        else:
            me = (
                ANONYMOUS_ME
                if self.user_id is None
                else await database_sync_to_async(selectors.room_me)(room_id=self.room_id, user_id=self.user_id)
            )
            self.reply({**public, "me": me}, ref=ref)
        if not self.ready:
            self.ready = True
            early, self.early = self.early, []
            for message in early:
                self.outbox.push(message)
        return True

    async def link_lost(self) -> None:
        """The hub lost Redis and forgot the room: tell the client to reconnect later."""
        self.joined = False
        self.reply(events.ev_error(v=self.hub.version(self.room_id), code="unavailable", message=UNAVAILABLE))
        await self.close(CLOSE_TRY_AGAIN)

    async def kick(self, *, code: int, reason: str) -> None:
        self.reply(
            events.ev_error(
                v=self.hub.version(self.room_id), code=reason, message="You have been removed from this room."
            )
        )
        await self.close(code)

    async def refresh_role(self) -> None:
        me = await database_sync_to_async(selectors.room_me)(room_id=self.room_id, user_id=self.user_id)
        if me is None:
            return
        if me["role"] == Role.BANNED:
            await self.kick(code=CLOSE_BANNED, reason="banned")
            return
        self.reply({"type": "me", "v": self.hub.version(self.room_id), "me": me})

    # --- incoming -----------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        v = self.hub.version(self.room_id)
        now = time.monotonic()
        self.hits = [t for t in self.hits if now - t < FLOOD_WINDOW]
        self.hits.append(now)
        if len(self.hits) > FLOOD_MESSAGES:
            self.reply(events.ev_error(v=v, code="flood", message="Too many messages; slow down and reconnect."))
            await self.close(CLOSE_FLOOD)
            return
        if text_data is None:
            self.reply(events.ev_error(v=v, code="binary_unsupported", message="Send JSON text frames."))
            return
        try:
            payload = inbound.parse_message(text_data, max_bytes=settings.WS_MAX_FRAME_BYTES)
        except inbound.Refused as exc:
            self.reply(events.ev_error(v=v, code=exc.code, message=exc.message), ref=exc.ref)
            if exc.code == "too_big":
                await self.close(CLOSE_TOO_BIG)
            return
        ref = inbound.ref_of(payload)
        handler = HANDLERS.get(payload["type"])
        if handler is None:
            self.reply(
                events.ev_error(v=v, code="unknown_type", message=f"Unknown message type {payload['type'][:40]!r}."),
                ref=ref,
            )
            return
        if not self.ready:
            self.reply(events.ev_error(v=v, code="not_ready", message="Wait for the snapshot."), ref=ref)
            return
        try:
            await handler(self, payload)
        except RoomError as exc:
            self.reply(events.ev_error(v=self.hub.version(self.room_id), code=exc.code, message=exc.message), ref=ref)
        except redis.RedisError:
            log.warning("room %s: Redis failed under %r", self.room_id, payload["type"], exc_info=True)
            self.reply(events.ev_error(v=v, code="unavailable", message=UNAVAILABLE), ref=ref)
        except Exception:
            log.exception("room %s: handler for %r failed", self.room_id, payload["type"])
            self.reply(events.ev_error(v=v, code="server_error", message="Something went wrong; try again."), ref=ref)

    def ack(self, payload: dict, **extra) -> None:
        self.reply(events.ev_ack(v=self.hub.version(self.room_id), ref=payload.get("ref"), **extra))

    @property
    def user(self):
        return self.scope.get("user")


def _frame_send(send):
    """The server's own ASGI send under Channels' session wrappers.

    The wrapper looks at the lazy session on every message to save it on HTTP responses
    and the handshake; a room frame never touches the session, and the look costs about
    as much as writing the frame. accept() and close() still go through the wrapper.
    """
    for _ in range(4):
        real = getattr(getattr(send, "__self__", None), "real_send", None)
        if real is None:
            break
        send = real
    return send


def _int(payload: dict, name: str) -> int:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RoomError("invalid", f'"{name}" must be a whole number.')
    return value


def _with_room(func):
    """Run a service in a thread with the room re-read from the database."""

    def run(room_id: int, **kwargs):
        room = selectors.room_get(room_id=room_id)
        if room is None:
            raise RoomError("not_found", "This room no longer exists.")
        return func(room=room, **kwargs)

    return database_sync_to_async(run)


# --- the room's own message types --------------------------------------------------------


@register("ping")
async def handle_ping(consumer: RoomConsumer, payload: dict) -> None:
    consumer.reply({"type": "pong", "v": consumer.hub.version(consumer.room_id)}, ref=payload.get("ref"))


@register("snapshot.request")
async def handle_snapshot(consumer: RoomConsumer, payload: dict) -> None:
    await consumer.send_snapshot(ref=payload.get("ref"))


@register("chat.send")
async def handle_chat(consumer: RoomConsumer, payload: dict) -> None:
    message = await _with_room(services.chat_post)(consumer.room_id, user=consumer.user, text=payload.get("text"))
    consumer.ack(payload, id=message.pk)


@register("like")
async def handle_like(consumer: RoomConsumer, payload: dict) -> None:
    count = payload.get("count", 1)
    total = await _with_room(services.room_like)(consumer.room_id, user=consumer.user, count=count)
    consumer.ack(payload, likes=total)


@register("follow")
async def handle_follow(consumer: RoomConsumer, payload: dict) -> None:
    follow = payload.get("follow")
    if not isinstance(follow, bool):
        raise RoomError("invalid", '"follow" must be true or false.')

    def run(room):
        services.follow_set(user=consumer.user, host=room.host, follow=follow)
        return selectors.followers_count(host_id=room.host_id)

    followers = await _with_room(run)(consumer.room_id)
    consumer.ack(payload, following=follow, followers=followers)


@register("pin")
async def handle_pin(consumer: RoomConsumer, payload: dict) -> None:
    item_id = _int(payload, "item_id")
    # room_pin locks and re-reads the room itself: no separate read first on this hot path.
    pin = await database_sync_to_async(services.room_pin)(
        room=Room(pk=consumer.room_id), item_id=item_id, by=consumer.user
    )
    consumer.ack(payload, pin_id=pin.pk)


@register("unpin")
async def handle_unpin(consumer: RoomConsumer, payload: dict) -> None:
    await _with_room(services.room_unpin)(consumer.room_id, by=consumer.user)
    consumer.ack(payload)


@register("chat.remove")
async def handle_chat_remove(consumer: RoomConsumer, payload: dict) -> None:
    message_id = _int(payload, "message_id")
    await _with_room(services.chat_remove)(consumer.room_id, message_id=message_id, by=consumer.user)
    consumer.ack(payload)


@register("mute")
async def handle_mute(consumer: RoomConsumer, payload: dict) -> None:
    user_id, minutes = _int(payload, "user_id"), _int(payload, "minutes")
    mute = await _with_room(services.user_mute)(consumer.room_id, user_id=user_id, minutes=minutes, by=consumer.user)
    consumer.ack(payload, until=mute.until.isoformat())


@register("unmute")
async def handle_unmute(consumer: RoomConsumer, payload: dict) -> None:
    await _with_room(services.user_unmute)(consumer.room_id, user_id=_int(payload, "user_id"), by=consumer.user)
    consumer.ack(payload)


@register("ban")
async def handle_ban(consumer: RoomConsumer, payload: dict) -> None:
    await _with_room(services.user_ban)(consumer.room_id, user_id=_int(payload, "user_id"), by=consumer.user)
    consumer.ack(payload)


@register("slow_mode")
async def handle_slow_mode(consumer: RoomConsumer, payload: dict) -> None:
    seconds = _int(payload, "seconds")
    await _with_room(services.room_set_slow_mode)(consumer.room_id, seconds=seconds, by=consumer.user)
    consumer.ack(payload)
