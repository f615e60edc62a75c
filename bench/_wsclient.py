"""A small websocket client for load generators: one asyncio Protocol per socket.

The `websockets` asyncio client keeps a reader task, a frame queue and an async iterator
per socket, and a send with a timeout is one more task. With 2,000 buyers that cost the
flash-sale load generator about 0.6 s of CPU in a round that lasts about a second, on the
same two cores as the server it measures. This client does what a load generator needs and
no more (RFC 6455): the opening handshake, masked frames out, server frames parsed where
they arrive (`data_received`), a pong for every ping, the closing handshake. Each whole
text or binary message goes to `on_message(arrival_time, payload_bytes)`; the arrival time
is `time.perf_counter()` when its last bytes were read.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
from collections.abc import Callable
from urllib.parse import urlsplit

ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


def client_frame(payload: bytes, opcode: int = TEXT) -> bytes:
    """One final frame, masked with a fresh random key as a client must."""
    n = len(payload)
    first = 0x80 | opcode
    if n < 126:
        header = struct.pack("!BB", first, 0x80 | n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    key = os.urandom(4)
    stream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return header + key + masked


class ClientSocket(asyncio.Protocol):
    """One websocket. `opened` resolves after the server's 101, `closed` when the TCP
    connection is gone; `close_code` is the code of the server's close frame, if any."""

    def __init__(self, request: bytes, key: bytes, on_message: Callable[[float, bytes], None]):
        loop = asyncio.get_running_loop()
        self.request, self.on_message = request, on_message
        self.accept = base64.b64encode(hashlib.sha1(key + ACCEPT_GUID).digest())
        self.opened: asyncio.Future = loop.create_future()
        self.closed: asyncio.Future = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.fragments: list[bytes] | None = None
        self.close_code: int | None = None
        self.close_sent = False

    @property
    def open(self) -> bool:
        return self.upgraded and self.transport is not None and not self.transport.is_closing()

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        at = time.perf_counter()
        buf = self.buffer + data if self.buffer else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buf
                return
            head, buf = buf[:end], buf[end + 4 :]
            error = self._check_handshake(head)
            if error:
                self.buffer = b""
                self._fail(ConnectionError(error))
                return
            self.upgraded = True
            self.opened.set_result(None)
        self.buffer = self._frames(buf, at)

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("connection closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    # --- frames ---------------------------------------------------------------------------

    def _check_handshake(self, head: bytes) -> str | None:
        status, *lines = head.split(b"\r\n")
        if not status.startswith(b"HTTP/1.1 101"):
            return f"handshake refused: {status.decode('latin-1')}"
        headers = {}
        for line in lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"sec-websocket-accept") != self.accept:
            return "handshake: wrong Sec-WebSocket-Accept"
        return None

    def _frames(self, buf: bytes, at: float) -> bytes:
        pos, size = 0, len(buf)
        while size - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            length, head = second & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if second & 0x80:  # a server must not mask
                self._fail(ConnectionError("masked frame from the server"))
                return b""
            if size - pos < head + length:
                break
            payload = buf[pos + head : pos + head + length]
            pos += head + length
            self._frame(first & 0x80, first & 0x0F, payload, at)
        return buf[pos:] if pos else buf

    def _frame(self, fin: int, opcode: int, payload: bytes, at: float) -> None:
        if opcode in (TEXT, BINARY):
            if fin:
                self.on_message(at, payload)
            else:
                self.fragments = [payload]
        elif opcode == CONTINUATION and self.fragments is not None:
            self.fragments.append(payload)
            if fin:
                whole, self.fragments = b"".join(self.fragments), None
                self.on_message(at, whole)
        elif opcode == PING:
            self.transport.write(client_frame(payload, PONG))
        elif opcode == CLOSE:
            if len(payload) >= 2:
                self.close_code = int.from_bytes(payload[:2], "big")
            if not self.close_sent:  # echo it, then the server closes the connection
                self.close_sent = True
                self.transport.write(client_frame(payload[:2], CLOSE))

    def _fail(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    # --- what a load generator calls ------------------------------------------------------

    def send_frame(self, frame: bytes) -> bool:
        """Write a frame made by `client_frame`; False when the socket is no longer open."""
        if not self.open:
            return False
        self.transport.write(frame)
        return True

    async def close(self, timeout: float = 2.0) -> None:
        if self.transport is None:
            return
        if self.open and not self.close_sent:
            self.close_sent = True
            self.transport.write(client_frame(struct.pack("!H", 1000), CLOSE))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self.transport.abort()


async def connect(
    url: str,
    on_message: Callable[[float, bytes], None],
    *,
    origin: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> ClientSocket:
    """Open `ws://host:port/path` and return the socket once the server has upgraded it."""
    parts = urlsplit(url)
    if parts.scheme != "ws":
        raise ValueError(f"only ws:// URLs: {url}")
    key = base64.b64encode(os.urandom(16))
    lines = [
        f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    loop = asyncio.get_running_loop()
    sock = ClientSocket(request, key, on_message)
    async with asyncio.timeout(timeout):
        await loop.create_connection(lambda: sock, parts.hostname, parts.port or 80)
        try:
            await sock.opened
        except BaseException:
            sock.transport.abort()
            raise
    return sock
