"""Hostile frames on the room socket, as an outside tester sent them (issue 17, findings 1-3).

Findings 1 and 2 go through a real uvicorn process: what the tester saw was the socket
dropped with no close frame (1006), which only a real server shows.
"""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async as db
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from streams.models import ChatMessage
from streams.tests.factories import connect, make_room, make_user, next_of, receive_type, ws_url

pytestmark = pytest.mark.django_db(transaction=True)


def hostile_then_ping(live_url: str, room_id: int, frame: str) -> tuple[dict, dict]:
    """Send `frame` on a real socket, then a ping: (the answer to the frame, the pong)."""

    async def scenario():
        async with ws_connect(ws_url(live_url, room_id), origin=live_url) as ws:
            await next_of(ws, "snapshot")
            await ws.send(frame)
            try:
                answer = await next_of(ws, "error")
                await ws.send(json.dumps({"type": "ping", "ref": "still-there"}))
                pong = await next_of(ws, "pong")
            except ConnectionClosed as closed:
                pytest.fail(f"the server dropped the socket (close code {closed.rcvd.code if closed.rcvd else 1006})")
            return answer, pong

    return asyncio.run(scenario())


def test_a_ref_holding_an_unpaired_surrogate_is_refused_and_the_socket_stays_open(live_url):
    room = make_room()
    answer, pong = hostile_then_ping(live_url, room.pk, '{"type": "ping", "ref": "\\ud800"}')
    assert answer["code"] == "bad_text"
    assert answer.get("ref") is None  # it could not be sent back
    assert pong["ref"] == "still-there"


def test_deeply_nested_json_under_the_frame_limit_is_refused_and_the_socket_stays_open(live_url):
    room = make_room()
    frame = '{"type": "ping", "x": ' + "[" * 2000 + "]" * 2000 + "}"
    assert len(frame.encode()) < 4096
    answer, pong = hostile_then_ping(live_url, room.pk, frame)
    assert answer["code"] == "too_deep"
    assert pong["ref"] == "still-there"


@pytest.mark.parametrize("text", ["hi\\u0000there", "bad \\ud83d half", "bell \\u0007 rings", "\\udc00"])
async def test_chat_text_with_nul_control_or_half_a_surrogate_pair_gets_a_clear_refusal(text):
    room = await db(make_room)()
    user = await db(make_user)()
    ws, _ = await connect(room.pk, user)
    await ws.send_to(text_data='{"type": "chat.send", "text": "' + text + '", "ref": "c1"}')
    error = await receive_type(ws, "error")
    assert error["code"] == "bad_text" and error["ref"] == "c1"
    assert "control characters" in error["message"]
    assert await db(ChatMessage.objects.count)() == 0
    # Emoji (a proper surrogate pair in JSON) and tabs are still fine.
    await ws.send_to(text_data='{"type": "chat.send", "text": "nice \\ud83d\\ude00\\tcolour", "ref": "c2"}')
    ack = await receive_type(ws, "ack")
    assert ack["ref"] == "c2"
    assert await db(lambda: ChatMessage.objects.get().text)() == "nice \U0001f600 colour"
    await ws.disconnect()
