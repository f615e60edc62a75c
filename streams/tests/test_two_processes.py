"""Two web processes (uvicorn children) on one Redis and the test database.

A pin made through process B reaches a viewer held by process A; a ban made through B
closes the banned viewer's socket held by A, within a second.
"""

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect

from conftest import AsgiServer
from streams.tests.factories import make_room, make_user, next_of, session_cookie
from streams.tests.factories import ws_url as room_ws_url

pytestmark = pytest.mark.django_db(transaction=True)


def ws_url(server: AsgiServer, room_id: int) -> str:
    return room_ws_url(server.url, room_id)


@pytest.fixture
def two_servers(transactional_db):
    a = AsgiServer()
    try:
        b = AsgiServer()
    except Exception:
        a.stop()
        raise
    yield a, b
    a.stop()
    b.stop()


def test_pin_and_ban_made_through_one_process_reach_sockets_held_by_another(two_servers):
    a, b = two_servers
    assert a.proc.pid != b.proc.pid
    room = make_room()
    item_id = room.shelf.order_by("position").last().pk
    host_cookie = session_cookie(room.host.user).decode()
    fan = make_user()
    fan_cookie = session_cookie(fan).decode()

    async def scenario():
        async with (
            connect(ws_url(a, room.pk), origin=a.url) as viewer,
            connect(ws_url(a, room.pk), origin=a.url, additional_headers={"Cookie": fan_cookie}) as fan_ws,
            connect(ws_url(b, room.pk), origin=b.url, additional_headers={"Cookie": host_cookie}) as host,
        ):
            snap = await next_of(viewer, "snapshot")
            await next_of(fan_ws, "snapshot")
            assert (await next_of(host, "snapshot"))["me"]["role"] == "host"

            await host.send(json.dumps({"type": "pin", "item_id": item_id}))
            pin = await next_of(viewer, "pin")
            assert pin["item"]["id"] == item_id and pin["v"] == snap["v"] + 1

            # viewer counts add up across both processes
            counts = await next_of(viewer, "counts")
            while counts["viewers"] != 3:
                counts = await next_of(viewer, "counts")

            await host.send(json.dumps({"type": "ban", "user_id": fan.pk}))
            await next_of(host, "ack")
            started = time.monotonic()
            with pytest.raises(Exception) as closed:
                while True:
                    await asyncio.wait_for(fan_ws.recv(), 3)
            assert time.monotonic() - started < 1.0
            assert fan_ws.close_code == 4003, closed.value

    asyncio.run(scenario())
