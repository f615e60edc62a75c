"""Room frames written straight to uvicorn's transport (`fanout.direct_writer`).

The prepared frame must be byte-for-byte what a websocket client accepts, whatever the
length class, and a socket that negotiated permessage-deflate must still get every frame
(through the ASGI send, compressed)."""

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from conftest import PRODUCTION_WS_ARGS, AsgiServer
from streams import fanout
from streams.tests.factories import make_room, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_a_prepared_frame_parses_as_one_final_unmasked_text_frame(size):
    text = ("é" * size)[:size] if size % 2 else "x" * size  # multi-byte text too: lengths are in bytes
    reader = StreamReader()
    reader.feed_data(fanout.text_frame(text))
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False, max_size=None)
    with pytest.raises(StopIteration) as done:
        while True:
            next(parser)
    frame = done.value.value
    assert (frame.opcode, frame.fin, frame.data.decode()) == (Opcode.TEXT, True, text)


@pytest.fixture(params=["deflate off", "deflate on"])
def server(request, transactional_db):
    args = PRODUCTION_WS_ARGS if request.param == "deflate off" else ()
    srv = AsgiServer(extra_args=args)
    yield request.param, srv
    srv.stop()


def test_room_events_and_replies_reach_sockets_with_and_without_compression(server):
    mode, srv = server
    room = make_room()
    item_id = room.shelf.order_by("position").last().pk
    host_cookie = session_cookie(room.host.user).decode()
    url = srv.url.replace("http://", "ws://") + f"/ws/rooms/{room.pk}/"

    async def next_of(ws, wanted: str) -> dict:
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if event["type"] == wanted:
                return event

    async def scenario():
        async with (
            connect(url, origin=srv.url) as viewer,
            connect(url, origin=srv.url, additional_headers={"Cookie": host_cookie}) as host,
        ):
            await next_of(viewer, "snapshot")
            await next_of(host, "snapshot")
            assert bool(viewer.protocol.extensions) == (mode == "deflate on")
            for _ in range(3):  # a broadcast each time, in order
                await host.send(json.dumps({"type": "pin", "item_id": item_id}))
                pin = await next_of(viewer, "pin")
                assert pin["item"]["id"] == item_id
                await host.send(json.dumps({"type": "unpin"}))
                await next_of(viewer, "unpin")
            await viewer.send(json.dumps({"type": "no-such-thing"}))  # a reply to this socket only
            error = await next_of(viewer, "error")
            assert error["code"] == "unknown_type" and "no-such-thing" in error["message"]

    asyncio.run(scenario())
