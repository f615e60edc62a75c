"""The live-room websocket: every message type and every refusal, on real PostgreSQL + Redis."""

import json

import pytest
from channels.db import database_sync_to_async as db
from channels.testing import WebsocketCommunicator

from streams import services
from streams.models import ChatMessage, Follow, Notification, PinEvent, Room, RoomModerator
from streams.tests.factories import connect, make_host, make_room, make_user, receive_type

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def room():
    return await db(make_room)()


async def close_code(communicator, timeout=2.0) -> int:
    while True:
        message = await communicator.receive_output(timeout)
        if message["type"] == "websocket.close":
            return message.get("code")


async def test_anonymous_viewer_gets_a_snapshot_with_shelf_and_role(room):
    ws, snap = await connect(room.pk)
    assert snap["type"] == "snapshot"
    assert snap["v"] == room.version
    assert snap["room"]["status"] == "live"
    assert [item["title"] for item in snap["shelf"]] and len(snap["shelf"]) == 2
    assert snap["shelf"][0]["retailer"] == "JD Mall Self-Operated"
    assert snap["pinned"] is None
    assert snap["me"]["role"] == "anonymous"
    await ws.disconnect()


async def test_host_pin_reaches_viewers_with_next_version_and_history_is_kept(room):
    host = await db(lambda: room.host.user)()
    viewer, snap = await connect(room.pk)
    host_ws, _ = await connect(room.pk, host)
    first, second = snap["shelf"][0]["id"], snap["shelf"][1]["id"]

    await host_ws.send_json_to({"type": "pin", "item_id": first, "ref": "a1"})
    pin1 = await receive_type(viewer, "pin")
    assert pin1["v"] == snap["v"] + 1
    assert pin1["item"]["id"] == first
    assert pin1["item"]["live_price"] == "80.00" and pin1["item"]["list_price"] == "100.00"
    assert pin1["item"]["stock_state"] == "in_stock"
    ack = await receive_type(host_ws, "ack")
    assert ack["ref"] == "a1" and ack["pin_id"] == pin1["pin_id"]

    await host_ws.send_json_to({"type": "pin", "item_id": second})
    pin2 = await receive_type(viewer, "pin")
    assert pin2["v"] == pin1["v"] + 1 and pin2["item"]["id"] == second

    await host_ws.send_json_to({"type": "unpin"})
    unpin = await receive_type(viewer, "unpin")
    assert unpin["v"] == pin2["v"] + 1

    pins = await db(
        lambda: list(PinEvent.objects.filter(room=room).order_by("pinned_at").values_list("item_id", "unpinned_at"))
    )()
    assert [p[0] for p in pins] == [first, second]
    assert all(p[1] is not None for p in pins)
    assert (await db(Room.objects.get)(pk=room.pk)).pinned_item_id is None
    await viewer.disconnect()
    await host_ws.disconnect()


async def test_reconnecting_client_gets_a_snapshot_showing_what_it_missed(room):
    host = await db(lambda: room.host.user)()
    viewer, snap = await connect(room.pk)
    await viewer.disconnect()
    item_id = snap["shelf"][1]["id"]
    await db(services.room_pin)(room=room, item_id=item_id, by=host)
    await db(services.room_set_slow_mode)(room=room, seconds=10, by=host)

    viewer, fresh = await connect(room.pk)
    assert fresh["v"] == snap["v"] + 2  # a client holding snap["v"] sees the gap and uses this snapshot
    assert fresh["pinned"]["id"] == item_id
    assert fresh["room"]["slow_mode_seconds"] == 10
    await viewer.send_json_to({"type": "snapshot.request", "ref": 7})
    again = await receive_type(viewer, "snapshot")
    assert again["v"] == fresh["v"] and again["ref"] == 7
    await viewer.disconnect()


async def test_viewer_cannot_pin_or_moderate(room):
    user = await db(make_user)()
    ws, snap = await connect(room.pk, user)
    for message in (
        {"type": "pin", "item_id": snap["shelf"][0]["id"]},
        {"type": "unpin"},
        {"type": "slow_mode", "seconds": 5},
        {"type": "ban", "user_id": user.pk},
        {"type": "mute", "user_id": user.pk, "minutes": 5},
        {"type": "chat.remove", "message_id": 1},
    ):
        await ws.send_json_to({**message, "ref": message["type"]})
        error = await receive_type(ws, "error")
        assert error["code"] == "forbidden" and error["ref"] == message["type"]
    fresh = await db(Room.objects.get)(pk=room.pk)
    assert fresh.pinned_item_id is None and fresh.slow_mode_seconds == 0 and fresh.version == snap["v"]
    await ws.disconnect()


async def test_anonymous_viewer_cannot_chat_like_or_follow(room):
    ws, _ = await connect(room.pk)
    for message in (
        {"type": "chat.send", "text": "hi"},
        {"type": "like", "count": 3},
        {"type": "follow", "follow": True},
    ):
        await ws.send_json_to(message)
        assert (await receive_type(ws, "error"))["code"] == "login_required"
    assert await db(ChatMessage.objects.count)() == 0
    await ws.disconnect()


async def test_chat_is_broadcast_as_plain_text_and_checked_for_length(room):
    alice, bob = await db(make_user)(), await db(make_user)()
    a, _ = await connect(room.pk, alice)
    b, _ = await connect(room.pk, bob)
    await a.send_json_to({"type": "chat.send", "text": "<img src=x onerror=alert(1)> is   this waterproof?"})
    chat = await receive_type(b, "chat")
    assert chat["message"]["text"] == "<img src=x onerror=alert(1)> is this waterproof?"
    assert chat["message"]["user"]["id"] == alice.pk

    await a.send_json_to({"type": "chat.send", "text": "x" * 201, "ref": "long"})
    error = await receive_type(a, "error")
    assert error["code"] == "too_long" and error["ref"] == "long"
    await a.send_json_to({"type": "chat.send", "text": "   "})
    assert (await receive_type(a, "error"))["code"] == "empty"
    await a.send_json_to({"type": "chat.send", "text": ["not", "text"]})
    assert (await receive_type(a, "error"))["code"] == "invalid"
    assert await db(ChatMessage.objects.count)() == 1
    await a.disconnect()
    await b.disconnect()


async def test_chat_rate_limit_per_user(room):
    user = await db(make_user)()
    ws, _ = await connect(room.pk, user)
    codes = []
    for i in range(services.CHAT_BURST + 1):
        await ws.send_json_to({"type": "chat.send", "text": f"msg {i}", "ref": i})
        while True:
            event = await ws.receive_json_from(timeout=3)
            if event["type"] in ("ack", "error") and event.get("ref") == i:
                codes.append(event.get("code", "ok"))
                break
    assert codes == ["ok"] * services.CHAT_BURST + ["rate_limited"]
    assert await db(ChatMessage.objects.count)() == services.CHAT_BURST
    await ws.disconnect()


async def test_slow_mode_set_over_the_socket_limits_viewers_not_the_host(room):
    host = await db(lambda: room.host.user)()
    user = await db(make_user)()
    host_ws, _ = await connect(room.pk, host)
    ws, snap = await connect(room.pk, user)
    await host_ws.send_json_to({"type": "slow_mode", "seconds": 30})
    event = await receive_type(ws, "slow_mode")
    assert event["seconds"] == 30 and event["v"] == snap["v"] + 1
    await ws.send_json_to({"type": "chat.send", "text": "first"})
    await receive_type(ws, "ack")
    await ws.send_json_to({"type": "chat.send", "text": "second"})
    assert (await receive_type(ws, "error"))["code"] == "slow_mode"
    await host_ws.send_json_to({"type": "chat.send", "text": "host 1"})
    await receive_type(host_ws, "ack")
    await host_ws.send_json_to({"type": "chat.send", "text": "host 2"})
    await receive_type(host_ws, "ack")
    await host_ws.send_json_to({"type": "slow_mode", "seconds": 301})
    assert (await receive_type(host_ws, "error"))["code"] == "invalid"
    await ws.disconnect()
    await host_ws.disconnect()


async def test_muted_user_cannot_chat_and_is_told(room):
    host = await db(lambda: room.host.user)()
    user = await db(make_user)()
    host_ws, _ = await connect(room.pk, host)
    ws, _ = await connect(room.pk, user)
    await host_ws.send_json_to({"type": "mute", "user_id": user.pk, "minutes": 10})
    await receive_type(host_ws, "ack")
    me = await receive_type(ws, "me")
    assert me["me"]["muted_until"] is not None
    await ws.send_json_to({"type": "chat.send", "text": "let me talk"})
    assert (await receive_type(ws, "error"))["code"] == "muted"
    await host_ws.send_json_to({"type": "mute", "user_id": user.pk, "minutes": 0})
    assert (await receive_type(host_ws, "error"))["code"] == "invalid"
    await host_ws.send_json_to({"type": "mute", "user_id": host.pk, "minutes": 5})
    assert (await receive_type(host_ws, "error"))["code"] == "forbidden"
    await ws.disconnect()
    await host_ws.disconnect()


async def test_moderator_removes_a_message_for_everyone(room):
    mod_user, user = await db(make_user)(), await db(make_user)()
    await db(services.moderator_add)(room=room, username=mod_user.username, by=await db(lambda: room.host.user)())
    mod, _ = await connect(room.pk, mod_user)
    ws, _ = await connect(room.pk, user)
    other, _ = await connect(room.pk)
    await ws.send_json_to({"type": "chat.send", "text": "buy followers at spam.example"})
    chat = await receive_type(other, "chat")
    await mod.send_json_to({"type": "chat.remove", "message_id": chat["message"]["id"]})
    removed = await receive_type(other, "chat.removed")
    assert removed["id"] == chat["message"]["id"]
    message = await db(ChatMessage.objects.get)(pk=chat["message"]["id"])
    assert message.removed_at is not None and message.removed_by_id == mod_user.pk
    _, snap = await connect(room.pk)
    assert all(m["id"] != chat["message"]["id"] for m in snap["chat"])
    await mod.send_json_to({"type": "chat.remove", "message_id": 999999})
    assert (await receive_type(mod, "error"))["code"] == "not_found"
    for c in (mod, ws, other):
        await c.disconnect()


async def test_banned_user_socket_closes_and_cannot_rejoin(room):
    host = await db(lambda: room.host.user)()
    user = await db(make_user)()
    host_ws, _ = await connect(room.pk, host)
    ws, _ = await connect(room.pk, user)
    await host_ws.send_json_to({"type": "ban", "user_id": user.pk})
    error = await receive_type(ws, "error", timeout=1.0)
    assert error["code"] == "banned"
    assert await close_code(ws, 1.0) == services.CLOSE_BANNED

    from config.asgi import application
    from streams.tests.factories import ORIGIN, session_cookie

    again = WebsocketCommunicator(
        application, f"/ws/rooms/{room.pk}/", headers=[ORIGIN, (b"cookie", await db(session_cookie)(user))]
    )
    await again.connect()
    assert (await again.receive_json_from())["code"] == "banned"
    assert await close_code(again) == services.CLOSE_BANNED
    await host_ws.disconnect()


async def test_revoked_moderator_loses_rights_on_an_open_socket(room):
    host = await db(lambda: room.host.user)()
    mod_user = await db(make_user)()
    await db(services.moderator_add)(room=room, username=mod_user.username, by=host)
    mod, snap = await connect(room.pk, mod_user)
    assert snap["me"]["role"] == "moderator"
    await mod.send_json_to({"type": "pin", "item_id": snap["shelf"][0]["id"]})
    await receive_type(mod, "ack")

    await db(services.moderator_remove)(room=room, user_id=mod_user.pk, by=host)
    me = await receive_type(mod, "me")
    assert me["me"]["role"] == "viewer"
    await mod.send_json_to({"type": "pin", "item_id": snap["shelf"][1]["id"]})
    assert (await receive_type(mod, "error"))["code"] == "forbidden"
    assert not await db(RoomModerator.objects.filter(room=room).exists)()
    assert (await db(Room.objects.get)(pk=room.pk)).pinned_item_id == snap["shelf"][0]["id"]
    await mod.disconnect()


async def test_malformed_frames_get_errors_and_the_socket_survives(room):
    ws, _ = await connect(room.pk)
    await ws.send_to(text_data="{not json")
    assert (await receive_type(ws, "error"))["code"] == "bad_json"
    await ws.send_to(text_data="[1, 2]")
    assert (await receive_type(ws, "error"))["code"] == "invalid"
    await ws.send_json_to({"type": "teleport", "ref": "t"})
    error = await receive_type(ws, "error")
    assert error["code"] == "unknown_type" and error["ref"] == "t"
    await ws.send_to(bytes_data=b"\x00\x01")
    assert (await receive_type(ws, "error"))["code"] == "binary_unsupported"
    await ws.send_json_to({"type": "pin", "item_id": "1; drop table"})
    assert (await receive_type(ws, "error"))["code"] in ("invalid", "forbidden")
    await ws.send_json_to({"type": "ping", "ref": "p"})
    assert (await receive_type(ws, "pong"))["ref"] == "p"
    await ws.disconnect()


async def test_oversized_frame_closes_the_socket(room):
    ws, _ = await connect(room.pk)
    await ws.send_to(text_data=json.dumps({"type": "chat.send", "text": "x" * 5000}))
    assert (await receive_type(ws, "error"))["code"] == "too_big"
    assert await close_code(ws) == 1009


async def test_flood_closes_the_socket(room):
    ws, _ = await connect(room.pk)
    for _ in range(30):
        await ws.send_json_to({"type": "ping"})
    assert await close_code(ws) == 4029


async def test_foreign_origin_and_missing_room_are_refused(room):
    from config.asgi import application

    evil = WebsocketCommunicator(
        application, f"/ws/rooms/{room.pk}/", headers=[(b"origin", b"https://evil.example.com")]
    )
    connected, _ = await evil.connect()
    assert not connected
    missing = WebsocketCommunicator(application, "/ws/rooms/999999/", headers=[(b"origin", b"http://127.0.0.1:8000")])
    await missing.connect()
    assert (await missing.receive_json_from())["code"] == "not_found"
    assert await close_code(missing) == 4404


async def test_likes_are_counted_on_the_server_and_shown_as_a_total(room):
    user = await db(make_user)()
    ws, snap = await connect(room.pk, user)
    await ws.send_json_to({"type": "like", "count": 7})
    ack = await receive_type(ws, "ack")
    assert ack["likes"] == snap["likes"] + 7
    counts = await receive_type(ws, "counts")
    while counts["likes"] != snap["likes"] + 7:
        counts = await receive_type(ws, "counts")
    assert counts["viewers"] == 1
    for bad in (0, 51, "9", True, 2.5):
        await ws.send_json_to({"type": "like", "count": bad})
        assert (await receive_type(ws, "error"))["code"] == "invalid"
    await ws.disconnect()


async def test_viewer_count_is_coalesced_into_counts_frames(room):
    first, _ = await connect(room.pk)
    others = [(await connect(room.pk))[0] for _ in range(3)]
    counts = await receive_type(first, "counts")
    while counts["viewers"] != 4:
        counts = await receive_type(first, "counts")
    for ws in others:
        await ws.disconnect()
    counts = await receive_type(first, "counts")
    while counts["viewers"] != 1:
        counts = await receive_type(first, "counts")
    await first.disconnect()


async def test_follow_and_go_live_notifies_followers(room):
    fan = await db(make_user)()
    host = await db(make_host)()
    upcoming = await db(make_room)(host=host, live=False)
    ws, snap = await connect(upcoming.pk, fan)
    assert snap["room"]["status"] == "scheduled" and snap["me"]["following"] is False
    await ws.send_json_to({"type": "follow", "follow": True})
    ack = await receive_type(ws, "ack")
    assert ack["following"] is True and ack["followers"] == 1
    assert await db(Follow.objects.filter(user=fan, host=host).exists)()

    await db(services.room_go_live)(room=upcoming)
    status = await receive_type(ws, "status")
    assert status["status"] == "live" and status["v"] == snap["v"] + 1
    note = await db(lambda: Notification.objects.get(user=fan))()
    assert note.kind == "host_live" and note.url == f"/rooms/{upcoming.pk}/"

    await db(services.room_end)(room=upcoming)
    assert (await receive_type(ws, "status"))["status"] == "ended"
    await ws.send_json_to({"type": "follow", "follow": "yes"})
    assert (await receive_type(ws, "error"))["code"] == "invalid"
    await ws.disconnect()


async def test_other_apps_can_register_message_types(room):
    from streams.consumers import HANDLERS, register

    @register("test.echo")
    async def echo(consumer, payload):
        consumer.reply({"type": "test.echoed", "v": 0, "room": consumer.room_id}, ref=payload.get("ref"))

    try:
        ws, _ = await connect(room.pk)
        await ws.send_json_to({"type": "test.echo", "ref": "e"})
        assert await receive_type(ws, "test.echoed") == {"type": "test.echoed", "v": 0, "room": room.pk, "ref": "e"}
        await ws.disconnect()
    finally:
        HANDLERS.pop("test.echo")


async def test_counts_do_not_leak_between_rooms(room):
    other = await db(make_room)()
    a, _ = await connect(room.pk)
    b, _ = await connect(other.pk)
    host = await db(lambda: room.host.user)()
    await db(services.room_pin)(room=room, item_id=(await db(lambda: room.shelf.first().pk)()), by=host)
    await receive_type(a, "pin")
    await b.send_json_to({"type": "ping"})
    seen = []
    while not seen or seen[-1] != "pong":
        seen.append((await b.receive_json_from(timeout=3))["type"])
    assert "pin" not in seen
    await a.disconnect()
    await b.disconnect()
