"""Buying over the room socket: the answer goes to the buyer only; the room sees the
masked ticker, the stock falling and the flash sale."""

import pytest
from channels.db import database_sync_to_async as db

from accounts.models import Address
from orders.models import Order
from orders.tests import factories as f
from streams.tests.factories import connect, make_room, make_user, receive_type

pytestmark = pytest.mark.django_db(transaction=True)


def buyer_with_address(name="wangfang"):
    user = make_user(name)
    user.display_name = "Wang Fang"
    user.save()
    address = f.address(user)
    return user, address


@pytest.fixture
async def room():
    return await db(make_room)()


async def test_buy_over_the_socket_answers_the_buyer_only(room):
    item = await db(lambda: room.shelf.first())()
    buyer, address = await db(buyer_with_address)()
    watcher = await db(make_user)()
    buyer_ws, _ = await connect(room.pk, buyer)
    watcher_ws, _ = await connect(room.pk, watcher)

    await buyer_ws.send_json_to({"type": "buy.quote", "item": item.pk, "quantity": 2, "ref": "q1"})
    quote = await receive_type(buyer_ws, "buy.quote")
    assert quote["ok"] and quote["ref"] == "q1" and quote["unit_price"] == str(item.live_price)
    assert quote["addresses"][0]["id"] == address.pk

    await buyer_ws.send_json_to({"type": "buy", "ref": "b1", "item": item.pk, "quantity": 2, "address": address.pk,
                                 "card": f.CARD_OK, "key": "socket-buy-0001",
                                 "price": "0.01", "total": "0.01", "status": "delivered"})  # fmt: skip
    reserved = await receive_type(buyer_ws, "buy.result", timeout=5)
    assert reserved["ok"] and reserved["code"] == "processing" and reserved["ref"] == "b1"
    assert reserved["order"]["status"] == "pending_payment"
    result = await receive_type(buyer_ws, "order.update", timeout=5)
    assert result["ok"] and result["code"] == "paid" and result["ref"] == "b1"
    assert result["order"]["total"] == str(item.live_price * 2) == reserved["order"]["total"]
    order = await db(Order.objects.get)(number=result["order"]["number"])
    assert order.status == "paid"

    seen = []
    while not {"purchase", "stock"} <= {e["type"] for e in seen}:  # in either order
        seen.append(await watcher_ws.receive_json_from(timeout=5))
    ticker = next(e for e in seen if e["type"] == "purchase")
    assert ticker["who"] == "Wa**" and ticker["quantity"] == 2 and "Wang Fang" not in str(ticker)
    stock = next(e for e in seen if e["type"] == "stock")
    assert stock["item"] == item.pk and stock["left"] == 48
    assert not [e for e in seen if e["type"] in ("buy.result", "order.update")]
    assert order.number not in str(seen)
    await buyer_ws.disconnect()
    await watcher_ws.disconnect()


async def test_refusals_come_back_in_shoppers_words(room):
    other_room = await db(make_room)()
    foreign = await db(lambda: other_room.shelf.first())()
    item = await db(lambda: room.shelf.first())()
    buyer, address = await db(buyer_with_address)()
    anon_ws, _ = await connect(room.pk)
    await anon_ws.send_json_to({"type": "buy", "item": item.pk, "quantity": 1, "key": "anon-key-001"})
    assert (await receive_type(anon_ws, "buy.result"))["code"] == "login_required"

    ws, _ = await connect(room.pk, buyer)
    base = {"type": "buy", "quantity": 1, "address": address.pk, "card": f.CARD_OK}
    await ws.send_json_to({**base, "item": foreign.pk, "key": "foreign-item-1"})
    assert (await receive_type(ws, "buy.result"))["code"] == "not_found"
    await ws.send_json_to({**base, "item": item.pk, "key": "declined-card-1", "card": f.CARD_DECLINE})
    assert (await receive_type(ws, "buy.result"))["code"] == "processing"
    declined = await receive_type(ws, "order.update")
    assert declined["code"] == "payment_declined" and "declined" in declined["message"]
    await ws.send_json_to({**base, "item": item.pk, "key": "limit-test-01", "quantity": 50})
    assert (await receive_type(ws, "buy.result"))["code"] == "limit_reached"
    await ws.send_json_to({**base, "item": item.pk, "key": "price-test-01", "expected_unit_price": "1.00"})
    changed = await receive_type(ws, "buy.result")
    assert changed["code"] == "price_changed" and changed["new_price"] == str(item.live_price)
    await ws.send_json_to({**base, "item": "DROP TABLE", "key": "bad-input-01"})
    assert (await receive_type(ws, "buy.result"))["code"] == "invalid_request"
    assert await db(Order.objects.filter(status="paid").count)() == 0
    await ws.disconnect()
    await anon_ws.disconnect()


async def test_flash_sale_start_countdown_and_sold_out_once(room):
    item = await db(lambda: room.shelf.first())()
    host_user = await db(lambda: room.host.user)()
    host_ws, _ = await connect(room.pk, host_user)
    viewer_ws, _ = await connect(room.pk, await db(make_user)())

    await viewer_ws.send_json_to({"type": "flash_sale.start", "item": item.pk, "sale_price": "60.00", "quantity": 2,
                                  "per_user_limit": 1, "duration_seconds": 60})  # fmt: skip
    refused = await viewer_ws.receive_json_from(timeout=3)
    while refused["type"] != "error":
        refused = await viewer_ws.receive_json_from(timeout=3)
    assert refused["code"] == "not_allowed"

    await host_ws.send_json_to({"type": "flash_sale.start", "ref": "fs", "item": item.pk, "sale_price": "60.00",
                                "quantity": 2, "per_user_limit": 1, "duration_seconds": 60})  # fmt: skip
    ack = await receive_type(host_ws, "ack")
    sale = ack["sale"]
    assert sale["left"] == 2 and sale["phase"] == "running"
    announced = await receive_type(viewer_ws, "flash_sale")
    assert announced["sale"]["id"] == sale["id"] and announced["sale"]["ends_at"] and announced["sale"]["server_now"]

    buyers = [await db(buyer_with_address)(f"fan{i}") for i in range(3)]
    sockets = [(await connect(room.pk, u))[0] for u, _ in buyers]
    for i, ((_, address), ws) in enumerate(zip(buyers, sockets, strict=True)):
        await ws.send_json_to({"type": "buy", "item": item.pk, "sale": sale["id"], "quantity": 1,
                               "address": address.pk, "card": f.CARD_OK, "key": f"flash-buyer-{i:03d}"})  # fmt: skip
    answers = [await receive_type(ws, "buy.result", timeout=5) for ws in sockets]
    assert sorted(a["code"] for a in answers) == ["processing", "processing", "sold_out"]
    paid = [
        await receive_type(ws, "order.update", timeout=5) for ws, a in zip(sockets, answers, strict=True) if a["ok"]
    ]
    assert [a["code"] for a in paid] == ["paid", "paid"]
    assert all(a["order"]["lines"][0]["unit_price"] == "60.00" for a in paid)

    sold_out = 0
    try:
        while True:
            event = await viewer_ws.receive_json_from(timeout=1.0)
            sold_out += event["type"] == "flash_sale.sold_out"
    except TimeoutError:
        pass  # (the communicator stops its application on a receive timeout)
    assert sold_out == 1
    for ws in [host_ws, *sockets]:
        await ws.disconnect()
    assert await db(Address.objects.count)() == 3
