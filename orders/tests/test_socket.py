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


async def test_flash_buy_runs_on_the_event_loop_and_writes_what_the_full_path_writes(room, monkeypatch):
    """A flash-sale buy is one statement on the loop's own connection (orders.fastpath): the
    full path is not called, the rows match `order_place`'s, a loser's allowance is rolled
    back with the refused gate, and a replayed key still gets the same order (full path)."""
    from datetime import timedelta

    from django.db.models import Prefetch
    from django.utils import timezone

    from orders import fastpath, handlers, services
    from orders.models import OrderEvent, OrderLine, PurchaseAllowance

    item = await db(lambda: room.shelf.first())()
    host_user = await db(lambda: room.host.user)()
    sale = await db(services.flash_sale_start)(user=host_user, shelf_item_id=item.pk, sale_price="60.00", quantity=2,
                                               per_user_limit=1, duration_seconds=60)  # fmt: skip
    buyers = [await db(buyer_with_address)(f"quick{i}") for i in range(3)]
    sockets = [(await connect(room.pk, u))[0] for u, _ in buyers]

    full_path = []
    real_place = handlers._place
    monkeypatch.setattr(handlers, "_place", lambda **kw: full_path.append(kw) or real_place(**kw))
    fastpath._left.clear()
    for i, ((_, address), ws) in enumerate(zip(buyers, sockets, strict=True)):
        await ws.send_json_to({"type": "buy", "item": item.pk, "sale": sale.pk, "quantity": 1, "address": address.pk,
                               "card": f.CARD_OK, "key": f"fast-buyer-{i:03d}",
                               "expected_unit_price": "60.00"})  # fmt: skip
    answers = [await receive_type(ws, "buy.result", timeout=5) for ws in sockets]
    assert sorted(a["code"] for a in answers) == ["processing", "processing", "sold_out"]  # concurrent: any order
    won = [i for i, a in enumerate(answers) if a["ok"]]
    lost = next(i for i, a in enumerate(answers) if not a["ok"])
    assert answers[lost]["left"] == 0 and not full_path
    for i in won:
        assert (await receive_type(sockets[i], "order.update", timeout=5))["code"] == "paid"

    # the same rows the full path writes, from the same figures
    fast = await db(
        lambda: Order.objects.prefetch_related("lines", Prefetch("events", OrderEvent.objects.order_by("pk"))).get(
            idempotency_key=f"fast-buyer-{won[0]:03d}"
        )
    )()
    assert fast.status == "paid" and fast.total == 60 and fast.room_id == room.pk
    assert fast.address == (await db(lambda: buyers[won[0]][1].as_snapshot())())
    assert fast.request_fingerprint == services.buy_fingerprint(
        shelf_item_id=item.pk, quantity=1, address_id=buyers[won[0]][1].pk, flash_sale_id=sale.pk,
        card=services.parse_card(f.CARD_OK), payment_method=f.CARD_OK,
    )  # fmt: skip
    line = fast.lines.all()[0]
    product = await db(lambda: item.product)()
    assert (line.flash_sale_id, line.bucket_id, line.unit_price, line.title) == (
        sale.pk, sale.bucket_id, 60, product.title)  # fmt: skip
    rate = await db(lambda: product.effective_commission_rate)()
    assert line.commission_amount == (60 * rate).quantize(services.CENT)
    events = [(e.from_status, e.to_status, e.actor_kind, e.reason) for e in fast.events.all()]
    assert events[0] == ("", "pending_payment", "buyer", "Order placed, stock reserved")
    assert await db(lambda: OrderEvent.objects.filter(order=fast).count())() == 2
    assert await db(lambda: PurchaseAllowance.objects.filter(user=buyers[lost][0]).count())() == 0  # rolled back
    assert await db(lambda: OrderLine.objects.filter(flash_sale=sale).count())() == 2
    assert await db(lambda: type(sale).objects.get(pk=sale.pk).sold_out_at is not None)()

    # a replayed key: the full path answers with the same order
    await sockets[won[0]].send_json_to({"type": "buy", "item": item.pk, "sale": sale.pk, "quantity": 1,
                                   "address": buyers[won[0]][1].pk, "card": f.CARD_OK, "key": fast.idempotency_key,
                                   "expected_unit_price": "60.00"})  # fmt: skip
    replay = await receive_type(sockets[won[0]], "buy.result", timeout=5)
    assert replay["order"]["number"] == fast.number and len(full_path) == 1

    # a sale that has not started: the full path gives the precise refusal
    later = await db(services.flash_sale_start)(
        user=host_user, shelf_item_id=(await db(lambda: room.shelf.last())()).pk, sale_price="100.00", quantity=2,
        per_user_limit=1, duration_seconds=60, starts_at=timezone.now() + timedelta(minutes=5),
    )  # fmt: skip
    await sockets[2].send_json_to({"type": "buy", "item": later.shelf_item_id, "sale": later.pk, "quantity": 1,
                                   "address": buyers[2][1].pk, "card": f.CARD_OK,
                                   "key": "fast-early-001"})  # fmt: skip
    assert (await receive_type(sockets[2], "buy.result", timeout=5))["code"] == "sale_not_started"
    for ws in sockets:
        await ws.disconnect()
