"""Room fan-out that does not pay the channel layer per socket.

One `Hub` per event loop (so one per web process) holds, for every room that has a
local socket, ONE Redis pub/sub subscription (all rooms share one pub/sub connection).
An event is serialised ONCE to a text frame by the publisher; the hub writes that same
frame to every local socket of the room with the socket's ASGI `send`, each write an
eager task so a socket that cannot take data does not hold up the others.

Counts (viewers, likes) never travel as events: one ticker per room per process reads
them from Redis a few times a second and sends a `counts` frame to its local sockets
only when they changed. Viewer counts across processes: every process writes its local
count into a Redis hash field with a timestamp; the total is the sum of fresh fields.

Control messages (close a banned user's sockets, a role changed, an event for one user
only: `{"op": "send", "user_id", "event"}`) travel on the same room channel, prefixed
with "!"; the control itself is never forwarded to clients.

Embedded default (no REDIS_URL): `publish` hands the frame to the hubs of this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING

import redis
import redis.asyncio as aredis
from channels.db import database_sync_to_async
from django.conf import settings

if TYPE_CHECKING:
    from streams.consumers import RoomConsumer

log = logging.getLogger(__name__)

CONTROL = "!"
TICK_SECONDS = 1.0
VIEWER_FIELD_TTL = 5.0
MAX_BACKLOG = 256  # frames a slow socket may owe before it is closed
CLOSE_TOO_SLOW = 4408
# Retries of a lost pub/sub connection before the process gives its rooms up (seconds).
RESUBSCRIBE_BACKOFF = (0.2, 0.4, 0.8)


def room_channel(room_id: int) -> str:
    return f"{settings.REDIS_PREFIX}:room:{room_id}"


def room_key(room_id: int, name: str) -> str:
    return f"{settings.REDIS_PREFIX}:room:{room_id}:{name}"


def encode(event: dict) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str)


def text_frame(text: str) -> bytes:
    """`text` as a server sends it on the wire (RFC 6455 5.2: FIN, text opcode, unmasked,
    no extension): the same bytes for every socket of a room, built once."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return b"\x81\x7e" + size.to_bytes(2, "big") + payload
    return b"\x81\x7f" + size.to_bytes(8, "big") + payload


def send_text(text: str) -> dict:
    """The ASGI message for `text`, carrying its prepared frame for `Outbox`'s direct write."""
    return {"type": "websocket.send", "text": text, "frame": text_frame(text)}


def direct_writer(send):
    """For a socket served by uvicorn's websockets-sansio protocol: a function that writes a
    prepared frame straight to the socket's transport and says whether it could.

    It can while the connection is open, negotiated no extension (permessage-deflate makes
    every frame per-socket; production turns it off, docs/operations.md), has not started
    closing and is not paused for back-pressure; otherwise the frame goes through the ASGI
    `send` as usual. Writing a room event to 1,000 sockets through `send` costs a task,
    an encode and a frame build per socket; this costs one `transport.write`.
    None when the server is another one (daphne, Channels' test communicator)."""
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
        from websockets.protocol import State
    except ImportError:  # pragma: no cover - uvicorn is in requirements.txt
        return None
    protocol = getattr(send, "__self__", None)
    if not isinstance(protocol, WebSocketsSansIOProtocol):
        return None
    conn, writable = protocol.conn, protocol.writable

    def write(frame: bytes) -> bool:
        transport = protocol.transport
        if conn.state is not State.OPEN or conn.extensions or protocol.close_sent or not writable.is_set():
            return False
        if transport is None or transport.is_closing():
            return False
        transport.write(frame)
        return True

    return write


# --- publishing (sync: services call this after commit) ---------------------------------

_sync_client: redis.Redis | None = None
_sync_lock = threading.Lock()


def sync_redis() -> redis.Redis:
    global _sync_client
    with _sync_lock:
        if _sync_client is None:
            _sync_client = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
            )
        return _sync_client


def publish(room_id: int, event: dict) -> None:
    """Send `event` to every socket of the room in every process. At most once."""
    _publish_text(room_id, encode(event))


def publish_control(room_id: int, control: dict) -> None:
    _publish_text(room_id, CONTROL + encode(control))


def _publish_text(room_id: int, text: str) -> None:
    if settings.REDIS_URL:
        try:
            sync_redis().publish(room_channel(room_id), text)
        except redis.RedisError:
            # The stream is at-most-once; clients recover from the snapshot.
            log.exception("publish to room %s failed", room_id)
        return
    for hub in list(_hubs.values()):
        hub.deliver_threadsafe(room_id, text)


# --- counters shared by every process --------------------------------------------------

_memory_likes: dict[int, int] = {}
_memory_lock = threading.Lock()


def likes_add(*, room_id: int, count: int, base: int) -> int:
    """Add `count` likes; `base` seeds the counter from the database the first time."""
    if settings.REDIS_URL:
        client = sync_redis()
        key = room_key(room_id, "likes")
        pipe = client.pipeline()
        pipe.set(key, base, nx=True, ex=7 * 86400)
        pipe.incrby(key, count)
        return int(pipe.execute()[1])
    with _memory_lock:
        _memory_likes[room_id] = _memory_likes.get(room_id, base) + count
        return _memory_likes[room_id]


def likes_get(*, room_id: int, base: int) -> int:
    """The room's likes; `base` (the database's count) while Redis cannot be read."""
    if settings.REDIS_URL:
        try:
            value = sync_redis().get(room_key(room_id, "likes"))
        except redis.RedisError:
            log.warning("likes of room %s unreadable: Redis is down", room_id)
            return base
        return max(int(value), base) if value is not None else base
    return max(_memory_likes.get(room_id, base), base)


def viewers_total(*, room_id: int) -> int | None:
    """Viewers across all processes (sync, for pages and snapshots); None while Redis
    cannot be read, so a page renders without the live count instead of failing."""
    if settings.REDIS_URL:
        try:
            fields = sync_redis().hgetall(room_key(room_id, "viewers"))
        except redis.RedisError:
            log.warning("viewers of room %s unreadable: Redis is down", room_id)
            return None
        return _sum_fresh(fields)
    return sum(hub.local_count(room_id) for hub in list(_hubs.values()))


def _sum_fresh(fields: dict) -> int:
    now = time.time()
    total = 0
    for value in fields.values():
        count, _, stamp = (value.decode() if isinstance(value, bytes) else value).partition(":")
        if stamp and now - float(stamp) < VIEWER_FIELD_TTL:
            total += int(count)
    return total


_memory_windows: dict[str, tuple[float, int]] = {}


def hit(*, key: str, limit: int, window: float) -> bool:
    """Count one hit on `key`; False once more than `limit` hits fell in the window."""
    full = f"{settings.REDIS_PREFIX}:rate:{key}"
    if settings.REDIS_URL:
        # The window starts with the first hit: SET NX gives the key its expiry and INCR
        # keeps it (Redis 6.2 has no PEXPIRE ... NX).
        pipe = sync_redis().pipeline()
        pipe.set(full, 0, px=int(window * 1000), nx=True)
        pipe.incr(full)
        return int(pipe.execute()[1]) <= limit
    now = time.monotonic()
    with _memory_lock:
        start, count = _memory_windows.get(full, (now, 0))
        if now - start >= window:
            start, count = now, 0
        _memory_windows[full] = (start, count + 1)
        return count + 1 <= limit


def hold(*, key: str, seconds: int) -> bool:
    """Take `key` for `seconds` (slow mode); False if it is still held."""
    full = f"{settings.REDIS_PREFIX}:hold:{key}"
    if settings.REDIS_URL:
        return bool(sync_redis().set(full, "1", nx=True, ex=seconds))
    now = time.monotonic()
    with _memory_lock:
        until, _ = _memory_windows.get(full, (0.0, 0))
        if until > now:
            return False
        _memory_windows[full] = (now + seconds, 0)
        return True


# --- the per-process hub ---------------------------------------------------------------

_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def get_hub() -> Hub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        for old in [lp for lp in _hubs if lp.is_closed()]:
            _hubs.pop(old, None)
        hub = _hubs[loop] = Hub(loop)
    return hub


SNAPSHOT_TTL = 5.0
CHAT_KEEP = 40


class _Room:
    __slots__ = (
        "building", "id", "likes", "peak_saved", "snapshot", "snapshot_at", "sockets", "subscribed", "ticker",
        "version", "viewers",
    )  # fmt: skip

    def __init__(self, room_id: int, loop: asyncio.AbstractEventLoop):
        self.id = room_id
        self.sockets: set[RoomConsumer] = set()
        self.subscribed: asyncio.Future = loop.create_future()
        self.ticker: asyncio.Task | None = None
        self.version = 0
        self.viewers = -1
        self.likes = -1
        self.peak_saved = 0
        # The public part of the snapshot, shared by every socket of the room in this process.
        self.snapshot: dict | None = None
        self.snapshot_at = 0.0
        self.building: asyncio.Future | None = None


class Hub:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.rooms: dict[int, _Room] = {}
        self._frames: dict[int, tuple[dict, str]] = {}
        self.process_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.redis: aredis.Redis | None = None
        self.pubsub = None
        self.reader: asyncio.Task | None = None
        if settings.REDIS_URL:
            self.redis = aredis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=None, socket_connect_timeout=2, health_check_interval=30
            )

    # joining and leaving ---------------------------------------------------------------

    async def join(self, room_id: int, consumer: RoomConsumer) -> None:
        """Register a socket. Returns once the room's subscription is live in Redis; raises
        (redis.RedisError, OSError) when Redis cannot be reached, and then forgets the room."""
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = _Room(room_id, self.loop)
            if self.redis is None:
                room.subscribed.set_result(True)
            else:
                try:
                    await self._subscribe(room)
                except BaseException as exc:
                    self._forget(room, exc)
                    raise
            room.ticker = self.loop.create_task(self._tick(room))
        room.sockets.add(consumer)
        await asyncio.shield(room.subscribed)

    def _forget(self, room: _Room, exc: BaseException) -> None:
        """Drop a room whose subscription failed; sockets still waiting for it get `exc`."""
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]
        self._frames.pop(room.id, None)
        if room.ticker:
            room.ticker.cancel()
        if not room.subscribed.done():
            room.subscribed.set_exception(exc)
            room.subscribed.exception()  # retrieved: each waiter re-raises it

    async def leave(self, room_id: int, consumer: RoomConsumer) -> None:
        room = self.rooms.get(room_id)
        if room is None:
            return
        room.sockets.discard(consumer)
        if room.sockets:
            return
        del self.rooms[room_id]
        self._frames.pop(room_id, None)
        if room.ticker:
            room.ticker.cancel()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.pubsub.unsubscribe(room_channel(room_id))
                await self.redis.hdel(room_key(room_id, "viewers"), self.process_id)

    def note_version(self, room_id: int, version: int) -> None:
        room = self.rooms.get(room_id)
        if room is not None and version > room.version:
            room.version = version

    def version(self, room_id: int) -> int:
        room = self.rooms.get(room_id)
        return room.version if room else 0

    async def public_snapshot(self, room_id: int, build) -> dict | None:
        """The room's public snapshot (everything but `me`), read once per version per process.

        Only sockets that already joined (so the room's subscription is live) ask, and a
        cached snapshot is used only while no state event arrived since it was read: a
        state event bumps the hub's version and the next socket reads the database again.
        Chat events passing through the hub are applied to the cached chat list.
        """
        room = self.rooms.get(room_id)
        if room is None:
            return await build(room_id=room_id)
        now = time.monotonic()
        if room.snapshot is not None and room.snapshot["v"] >= room.version and now - room.snapshot_at < SNAPSHOT_TTL:
            return room.snapshot
        if room.building is not None:
            return await asyncio.shield(room.building)
        room.building = self.loop.create_future()
        try:
            snapshot = await build(room_id=room_id)
        except BaseException as exc:
            room.building.set_exception(exc)
            room.building.exception()  # retrieved: waiters re-raise it
            room.building = None
            raise
        if snapshot is not None:
            self.note_version(room_id, snapshot["v"])
            if snapshot["v"] >= room.version:
                room.snapshot, room.snapshot_at = snapshot, now
        room.building.set_result(snapshot)
        room.building = None
        return snapshot

    def anonymous_frame(self, room_id: int, public: dict) -> str:
        """The snapshot frame of an anonymous viewer, encoded once per snapshot object."""
        from streams.selectors import ANONYMOUS_ME  # selectors import models

        cached = self._frames.get(room_id)
        if cached is not None and cached[0] is public:
            return cached[1]
        text = encode({**public, "me": ANONYMOUS_ME})
        self._frames[room_id] = (public, text)
        return text

    def local_count(self, room_id: int) -> int:
        room = self.rooms.get(room_id)
        return len(room.sockets) if room else 0

    # Redis subscription ------------------------------------------------------------------

    async def _subscribe(self, room: _Room) -> None:
        if self.pubsub is None:
            self.pubsub = self.redis.pubsub()
        await self.pubsub.subscribe(room_channel(room.id))
        if self.reader is None or self.reader.done():
            self.reader = self.loop.create_task(self._read())

    async def _read(self) -> None:
        prefix = f"{settings.REDIS_PREFIX}:room:"
        while True:
            try:
                message = await self.pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("room pub/sub connection failed; resubscribing", exc_info=True)
                for backoff in RESUBSCRIBE_BACKOFF:
                    await asyncio.sleep(backoff)
                    if await self._resubscribe():
                        break
                else:
                    self._link_lost()
                    return
                continue
            if message is None:
                if not self.rooms:
                    return
                continue
            channel = message["channel"]
            channel = channel.decode() if isinstance(channel, bytes) else channel
            if not channel.startswith(prefix):
                continue
            try:
                room_id = int(channel[len(prefix) :])
            except ValueError:
                continue
            kind = message["type"]
            if kind == "subscribe":
                room = self.rooms.get(room_id)
                if room is not None and not room.subscribed.done():
                    room.subscribed.set_result(True)
            elif kind == "message":
                data = message["data"]
                self.deliver(room_id, data.decode() if isinstance(data, bytes) else data)

    async def _resubscribe(self) -> bool:
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()
        self.pubsub = self.redis.pubsub()
        try:
            if self.rooms:
                await self.pubsub.subscribe(*[room_channel(r) for r in self.rooms])
        except Exception:
            return False
        # Events may have been lost while the connection was down: clients re-sync.
        for room in self.rooms.values():
            self._write(room, encode({"type": "resync", "v": room.version}))
        return True

    def _link_lost(self) -> None:
        """Redis stayed away: this process cannot hear the rooms' events, so its sockets are
        closed with "try again later" (1013) and the clients reconnect with backoff; they
        get a fresh snapshot once Redis answers again. Rooms are joined anew then."""
        log.warning("room pub/sub: Redis unreachable; closing %d rooms' sockets", len(self.rooms))
        rooms, self.rooms = self.rooms, {}
        self._frames.clear()
        pubsub, self.pubsub = self.pubsub, None
        for room in rooms.values():
            self._forget(room, ConnectionError("Redis unreachable"))
            for consumer in list(room.sockets):
                self.loop.create_task(consumer.link_lost())
        if pubsub is not None:
            self.loop.create_task(_close_quietly(pubsub))

    # delivery ----------------------------------------------------------------------------

    def deliver_threadsafe(self, room_id: int, text: str) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.deliver, room_id, text)

    def deliver(self, room_id: int, text: str) -> None:
        room = self.rooms.get(room_id)
        if room is None:
            return
        if text.startswith(CONTROL):
            self._control(room, json.loads(text[1:]))
            return
        # One parse per event per process (not per socket): the room's version, cached chat.
        with contextlib.suppress(ValueError, KeyError, TypeError):
            event = json.loads(text)
            self.note_version(room_id, int(event["v"]))
            if room.snapshot is not None:
                if event["type"] == "chat":
                    # a new dict, so frames encoded from the old one are not reused
                    room.snapshot = {**room.snapshot, "chat": [*room.snapshot["chat"], event["message"]][-CHAT_KEEP:]}
                elif event["type"] == "chat.removed":
                    chat = [m for m in room.snapshot["chat"] if m["id"] != event["id"]]
                    room.snapshot = {**room.snapshot, "chat": chat}
        self._write(room, text)

    def _write(self, room: _Room, text: str) -> None:
        message = send_text(text)
        for consumer in list(room.sockets):
            consumer.push(message)

    def _control(self, room: _Room, control: dict) -> None:
        op = control.get("op")
        user_id = control.get("user_id")
        for consumer in list(room.sockets):
            if consumer.user_id != user_id:
                continue
            if op == "kick":
                self.loop.create_task(
                    consumer.kick(code=int(control.get("code", 4003)), reason=control.get("reason", ""))
                )
            elif op == "role":
                self.loop.create_task(consumer.refresh_role())
            elif op == "send" and user_id is not None and isinstance(control.get("event"), dict):
                # One user's private event (e.g. "your order shipped"): only their sockets get it.
                consumer.push({"type": "websocket.send", "text": encode(control["event"])})

    # counts ------------------------------------------------------------------------------

    async def _tick(self, room: _Room) -> None:
        from streams import services  # services import models; the hub is imported early

        last_peak_write = 0.0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                local = len(room.sockets)
                if self.redis is not None:
                    key = room_key(room.id, "viewers")
                    pipe = self.redis.pipeline(transaction=False)
                    pipe.hset(key, self.process_id, f"{local}:{time.time():.3f}")
                    pipe.expire(key, 3600)
                    pipe.hgetall(key)
                    pipe.get(room_key(room.id, "likes"))
                    _, _, fields, likes = await pipe.execute()
                    viewers = _sum_fresh(fields)
                    likes = int(likes) if likes is not None else max(room.likes, 0)
                else:
                    viewers = sum(len(h.rooms[room.id].sockets) for h in list(_hubs.values()) if room.id in h.rooms)
                    likes = _memory_likes.get(room.id, max(room.likes, 0))
                if viewers != room.viewers or likes != room.likes:
                    room.viewers, room.likes = viewers, likes
                    if room.snapshot is not None:
                        room.snapshot = {**room.snapshot, "viewers": viewers, "likes": likes}
                    self._write(
                        room, encode({"type": "counts", "v": room.version, "viewers": viewers, "likes": likes})
                    )
                now = time.monotonic()
                if viewers > room.peak_saved and now - last_peak_write > 2:
                    last_peak_write = now
                    room.peak_saved = viewers
                    await database_sync_to_async(services.room_record_counts)(
                        room_id=room.id, viewers=viewers, likes=likes
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("counts ticker for room %s failed", room.id)


async def _close_quietly(pubsub) -> None:
    with contextlib.suppress(Exception):
        await pubsub.aclose()


class Outbox:
    """A socket's writes: straight through while it keeps up, a short queue when it lags.

    A message carrying a prepared `frame` (`send_text`) is written with `direct` when the
    socket allows it and nothing is queued before it; anything else goes through `send`."""

    __slots__ = ("backlog", "closing", "direct", "loop", "on_overflow", "pending", "send")

    def __init__(self, send, on_overflow, direct=None):
        self.loop = asyncio.get_running_loop()
        self.send = send
        self.direct = direct
        self.on_overflow = on_overflow
        self.pending: asyncio.Task | None = None
        self.backlog: deque = deque()
        self.closing = False

    def push(self, message: dict) -> None:
        if self.closing:
            return
        if self.pending is not None:
            if len(self.backlog) >= MAX_BACKLOG:
                self.closing = True
                self.backlog.clear()
                self.on_overflow()
                return
            self.backlog.append(message)
            return
        if self.direct is not None and "frame" in message and self.direct(message["frame"]):
            return
        self._start(message)

    def _start(self, message: dict) -> None:
        task = asyncio.Task(self.send(message), loop=self.loop, eager_start=True)
        if task.done():
            if not task.cancelled() and task.exception() is not None:
                self.closing = True
            return
        self.pending = task
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self.pending = None
        if task.cancelled() or task.exception() is not None:
            self.closing = True
            self.backlog.clear()
            return
        if self.backlog:
            self._start(self.backlog.popleft())
