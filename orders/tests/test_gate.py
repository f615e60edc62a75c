"""The flash sale's Redis admission gate (orders.gate) in front of PostgreSQL's, against the
real PostgreSQL and Redis: it can save PostgreSQL work, never sell a unit PostgreSQL does not
have, never say "sold out" while PostgreSQL still has units, and never hide a buyer's order."""

import asyncio

import pytest
from channels.db import database_sync_to_async as db
from django.db.models import Sum

from orders import fastpath, gate, services
from orders.models import Order, OrderLine, StockBucket
from orders.tests import factories as f

pytestmark = pytest.mark.django_db(transaction=True)


def make_sale(stock: int, buyers: int, limit: int = 1):
    item = f.shelf_item(stock=stock * 10, live_price="149.00")
    sale = services.flash_sale_start(user=item.room.host.user, shelf_item_id=item.pk, sale_price="120.00",
                                     quantity=stock, per_user_limit=limit, duration_seconds=300)  # fmt: skip
    crowd = []
    for i in range(buyers):
        user = f.user(f"gate{i:04d}")
        crowd.append((user.pk, f.address(user).pk))
    return item, sale, crowd


def books(sale):
    bucket = StockBucket.objects.get(pk=sale.bucket_id)
    units = OrderLine.objects.filter(flash_sale=sale).aggregate(n=Sum("quantity"))["n"] or 0
    return bucket, units


async def buy(item, sale, user_id, address_id, key, quantity=1):
    payload = {"item": item.pk, "sale": sale.pk, "quantity": quantity, "address": address_id, "card": f.CARD_OK,
               "key": key}  # fmt: skip
    return await fastpath.place(user_id=user_id, room_id=item.room_id, payload=payload)


def codes(placed):
    return [None if p is None else p[0]["code"] for p in placed]


def counter(sale):
    from streams.fanout import sync_redis

    value = sync_redis().get(gate.counter_key(sale.bucket_id))
    return None if value is None else int(value)


def set_counter(sale, value: int) -> None:
    from streams.fanout import sync_redis

    sync_redis().set(gate.counter_key(sale.bucket_id), value, px=60_000)


@pytest.fixture(autouse=True)
def _gate_up():
    gate._down_until[0] = 0.0
    fastpath._left.clear()
    fastpath._offers.clear()  # ids start again with each test's tables
    yield
    gate._down_until[0] = 0.0


async def test_a_burst_through_the_gate_sells_exactly_the_stock_and_every_loser_hears_sold_out():
    item, sale, crowd = await db(make_sale)(20, 300)
    placed = await asyncio.gather(*(buy(item, sale, u, a, f"burst-{i:04d}") for i, (u, a) in enumerate(crowd)))
    answers = codes(placed)
    assert answers.count("processing") == 20
    assert answers.count("sold_out") == 280  # every loser answered here, none sent to the slow path
    assert all(p[0]["left"] == 0 for p in placed if p[0]["code"] == "sold_out")
    bucket, units = await db(books)(sale)
    assert (bucket.available, bucket.reserved, units) == (0, 20, 20)
    assert await db(Order.objects.filter(lines__flash_sale=sale).count)() == 20
    assert counter(sale) in (0, None)  # the counter was used (or has lapsed since)


def transactions_that_wrote(sale) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT o.xmin::text) FROM orders_order o JOIN orders_orderline l"
                       " ON l.order_id = o.id WHERE l.flash_sale_id = %s", [sale.pk])  # fmt: skip
        return cursor.fetchone()[0]


async def test_buyers_who_pass_the_gate_together_are_reserved_in_one_transaction(monkeypatch):
    """The hot stock row changes hands once per batch, not once per buyer; the room hears
    "sold out" once, from the batch that took the last unit."""
    from orders import live

    announced = []
    monkeypatch.setattr(live, "flash_sold_out", lambda **kw: announced.append(kw))
    item, sale, crowd = await db(make_sale)(40, 40)
    placed = await asyncio.gather(*(buy(item, sale, u, a, f"batch-{i:03d}") for i, (u, a) in enumerate(crowd)))
    assert codes(placed) == ["processing"] * 40
    assert len({p[0]["order"]["number"] for p in placed}) == 40
    bucket, units = await db(books)(sale)
    assert (bucket.available, bucket.reserved, units) == (0, 40, 40)
    assert await db(transactions_that_wrote)(sale) <= 3  # the first buyer alone, then the rest together
    assert in_flight(sale) == 0
    assert await db(lambda: type(sale).objects.get(pk=sale.pk).sold_out_at is not None)()
    for _ in range(100):  # announced from an executor thread
        if announced:
            break
        await asyncio.sleep(0.02)
    assert announced == [{"room_id": item.room_id, "sale_id": sale.pk}]


async def test_a_batch_reserves_its_good_buyers_and_sends_the_others_to_the_full_path():
    """A replayed key, an address that cannot ship, and one buyer twice over their limit, in
    the same burst as three ordinary buyers: the ordinary three are reserved, the rest are
    answered by the full path (None here), and every unit not sold goes back to the gate."""
    item, sale, crowd = await db(make_sale)(10, 6)
    (u_replay, a_replay), (u_nowhere, _), (u_twice, a_twice), *ordinary = crowd
    assert (await buy(item, sale, u_replay, a_replay, "first-key"))[0]["code"] == "processing"

    def unshippable():
        return f.address(f.User.objects.get(pk=u_nowhere), recipient="").pk

    a_nowhere = await db(unshippable)()
    burst = [(u_replay, a_replay, "first-key"), (u_nowhere, a_nowhere, "nowhere-key"),
             (u_twice, a_twice, "twice-key-1"), (u_twice, a_twice, "twice-key-2"),
             *((u, a, f"ordinary-{i}") for i, (u, a) in enumerate(ordinary))]  # fmt: skip
    placed = await asyncio.gather(*(buy(item, sale, u, a, k) for u, a, k in burst))
    answers = codes(placed)
    assert answers[:2] == [None, None]
    assert sorted(answers[2:4], key=str) == [None, "processing"]  # the limit is 1
    assert answers[4:] == ["processing"] * 3
    bucket, units = await db(books)(sale)
    assert (bucket.available, bucket.reserved, units) == (5, 5, 5)
    assert await db(Order.objects.filter(buyer_id=u_replay).count)() == 1
    assert counter(sale) == 5  # the three units not sold went back
    assert in_flight(sale) == 0


async def test_a_counter_wrongly_at_zero_never_says_sold_out_while_postgresql_has_units():
    item, sale, crowd = await db(make_sale)(3, 5)
    set_counter(sale, 0)  # e.g. units came back (an expired reservation) after the counter was seeded
    placed = await asyncio.gather(*(buy(item, sale, u, a, f"low-key-{i:03d}") for i, (u, a) in enumerate(crowd)))
    assert sorted(codes(placed)) == ["processing"] * 3 + ["sold_out"] * 2
    bucket, units = await db(books)(sale)
    assert (bucket.available, units) == (0, 3)


def in_flight(sale):
    from streams.fanout import sync_redis

    return int(sync_redis().get(gate.in_flight_key(sale.bucket_id)) or 0)


async def test_units_claimed_by_buyers_in_flight_are_not_offered_again_and_a_dead_claim_lapses():
    item, sale, crowd = await db(make_sale)(3, 2)
    (u1, a1), (u2, a2) = crowd
    from streams.fanout import sync_redis

    # Three buyers (in another process) passed the gate and are reserving right now:
    # PostgreSQL still shows the units, but they are spoken for.
    set_counter(sale, 0)
    sync_redis().set(gate.in_flight_key(sale.bucket_id), 3, px=400)
    placed = await buy(item, sale, u1, a1, "claimed-1")
    assert placed[0]["code"] == "sold_out" and placed[0]["left"] == 0
    bucket, units = await db(books)(sale)
    assert (bucket.available, units) == (3, 0)  # nothing written
    # That process died before settling: its claim stops counting, the units are sold again.
    await asyncio.sleep(0.5)
    assert (await buy(item, sale, u2, a2, "claimed-2"))[0]["code"] == "processing"
    bucket, units = await db(books)(sale)
    assert (bucket.available, units) == (2, 1)


async def reserve_with_claim(item, sale, user_id, address_id, key) -> str:
    """A buyer of another process who passed the gate (one unit claimed) is reserved the way
    the gate's winners are (`_reserve`: the reservation commits, then the claim settles).
    Their answer's code."""
    conninfo = fastpath._conninfo()
    offer = await fastpath._offer(conninfo, sale_id=sale.pk, item_id=item.pk, room_id=item.room_id)
    params = services.flash_buy(offer=offer, user_id=user_id, quantity=1, address_id=address_id, key=key,
                                fingerprint="another-process", card=None)  # fmt: skip
    [outcome] = await fastpath._reserve(offer, [params])
    return "sold_out" if isinstance(outcome, fastpath.SoldOut) else "processing"


def claims_in_flight(sale, units: int) -> None:
    from streams.fanout import sync_redis

    sync_redis().set(gate.in_flight_key(sale.bucket_id), units, px=60_000)


def holders_commit_around_reads(monkeypatch, item, sale, holders, *, first: bool) -> tuple[list, list]:
    """While a refusal is confirmed, three buyers of another process who hold claims commit
    and settle, one at a time: first=False, each just before a read of the claims other
    than the first (so after PostgreSQL's read); first=True, each just after a read of the
    claims (so before PostgreSQL's next read). Returns the claim counts read and the
    holders' answers, both filled in as the confirmation runs."""
    real_in_flight, reads, answers = gate.in_flight, [], []

    async def in_flight_while_holders_commit(bucket_id):
        def commit():
            return reserve_with_claim(item, sale, *holders[len(answers)], f"holder-{len(answers)}")

        if not first and reads and len(answers) < 3:
            answers.append(await commit())
        reads.append(await real_in_flight(bucket_id))
        if first and len(answers) < 3:
            answers.append(await commit())
        return reads[-1]

    monkeypatch.setattr(gate, "in_flight", in_flight_while_holders_commit)
    return reads, answers


async def test_claims_settling_after_postgresql_is_read_never_hand_a_later_buyer_a_claimed_unit(monkeypatch):
    """Four buyers of another process passed the gate for the last four units; three of them
    commit, one by one, after PostgreSQL's reads and before the next read of the claims. The
    later buyer hears "sold out"; the fourth claim holder, who came first, gets the unit."""
    item, sale, crowd = await db(make_sale)(4, 5)
    *holders, (late_user, late_address) = crowd
    set_counter(sale, 0)
    claims_in_flight(sale, 4)
    monkeypatch.setattr(fastpath, "CONFIRM_PATIENCE_SECONDS", 60)  # however slow the holders' commits
    reads, answers = holders_commit_around_reads(monkeypatch, item, sale, holders, first=False)
    placed = await buy(item, sale, late_user, late_address, "late-key")
    assert reads[:4] == [4, 3, 2, 1]  # the claims moved under each of the first three reads
    assert placed[0]["code"] == "sold_out"
    answers.append(await reserve_with_claim(item, sale, *holders[3], "holder-3"))
    assert answers == ["processing"] * 4
    bucket, units = await db(books)(sale)
    assert (bucket.available, units) == (0, 4)
    assert in_flight(sale) == 0


async def test_claims_settling_before_postgresql_is_read_never_hide_a_free_unit(monkeypatch):
    """Five units, four claimed by buyers of another process, one free (the gate's counter
    wrongly at zero). Three holders commit, one by one, between a read of the claims and
    PostgreSQL's read. The later buyer gets the free unit, and every holder theirs."""
    item, sale, crowd = await db(make_sale)(5, 5)
    *holders, (late_user, late_address) = crowd
    set_counter(sale, 0)
    claims_in_flight(sale, 4)
    reads, answers = holders_commit_around_reads(monkeypatch, item, sale, holders, first=True)
    placed = await buy(item, sale, late_user, late_address, "late-key")
    assert reads[:4] == [4, 3, 2, 1]
    assert placed[0]["code"] == "processing"
    answers.append(await reserve_with_claim(item, sale, *holders[3], "holder-3"))
    assert answers == ["processing"] * 4
    bucket, units = await db(books)(sale)
    assert (bucket.available, units) == (0, 5)
    assert in_flight(sale) == 0


async def test_units_found_free_go_to_the_refused_buyers_in_arrival_order_and_no_further():
    """Buyers refused at the gate in one confirmation, three units free in PostgreSQL, handed
    out in arrival order: two to the first buyer; none to the next, who asks for two when
    one is left, nor to a replayed key; the last unit to the next buyer; nothing after."""
    item, sale, crowd = await db(make_sale)(4, 6, limit=2)
    (u0, a0), (u1, _), (u2, _), (u3, _), (u4, _), (u5, _) = crowd
    assert (await buy(item, sale, u0, a0, "earlier-key"))[0]["code"] == "processing"
    asks = [(u1, "ask-1", 2), (u2, "ask-2", 2), (u0, "earlier-key", 1), (u3, "ask-3", 1), (u4, "ask-4", 1),
            (u5, "ask-5", 2)]  # fmt: skip
    answers = await fastpath._confirm((sale.pk, item.pk, item.room_id, sale.bucket_id), asks)
    assert answers == [(3, False), (1, False), (1, True), (1, False), (0, False), (0, False)]


async def test_a_counter_is_not_seeded_while_the_claims_cannot_be_read(monkeypatch):
    """Redis answers the gate but not the read of the claims: no counter (it could offer
    units that buyers are reserving), and PostgreSQL answers the buyer alone."""
    item, sale, crowd = await db(make_sale)(2, 1)
    [(user_id, address_id)] = crowd
    import redis

    from streams.fanout import sync_redis

    sync_redis().delete(gate.counter_key(sale.bucket_id))
    client = gate._gate().client
    real_get = client.get

    async def get(key):
        if key == gate.in_flight_key(sale.bucket_id):
            raise redis.TimeoutError("the claims' read timed out")
        return await real_get(key)

    monkeypatch.setattr(client, "get", get)
    assert (await buy(item, sale, user_id, address_id, "unread-key"))[0]["code"] == "processing"
    assert counter(sale) is None
    bucket, units = await db(books)(sale)
    assert (bucket.available, units) == (1, 1)


async def test_a_counter_seeded_again_mid_sale_leaves_out_the_units_in_flight():
    """The counter lapsed while two buyers of another process are reserving the last two
    units: seeded again, it does not offer them a second time."""
    item, sale, crowd = await db(make_sale)(2, 3)
    *holders, (late_user, late_address) = crowd
    from streams.fanout import sync_redis

    sync_redis().delete(gate.counter_key(sale.bucket_id))
    claims_in_flight(sale, 2)
    placed = await buy(item, sale, late_user, late_address, "late-key")
    assert placed[0]["code"] == "sold_out"
    assert counter(sale) == 0
    answers = [await reserve_with_claim(item, sale, u, a, f"holder-{i}") for i, (u, a) in enumerate(holders)]
    assert answers == ["processing"] * 2
    bucket, units = await db(books)(sale)
    assert (bucket.available, units) == (0, 2)


async def test_a_settled_buy_is_no_longer_in_flight():
    item, sale, crowd = await db(make_sale)(2, 3)
    placed = await asyncio.gather(*(buy(item, sale, u, a, f"settle-{i}") for i, (u, a) in enumerate(crowd)))
    assert sorted(codes(placed)) == ["processing"] * 2 + ["sold_out"]
    assert in_flight(sale) == 0  # both claims settled once PostgreSQL answered them


async def test_a_counter_wrongly_high_never_oversells():
    item, sale, crowd = await db(make_sale)(2, 12)
    set_counter(sale, 1000)  # e.g. seeded before units went by another path
    placed = await asyncio.gather(*(buy(item, sale, u, a, f"high-key-{i:03d}") for i, (u, a) in enumerate(crowd)))
    assert sorted(codes(placed)) == ["processing"] * 2 + ["sold_out"] * 10
    bucket, units = await db(books)(sale)
    assert (bucket.available, bucket.reserved, units) == (0, 2, 2)
    assert in_flight(sale) == 0  # the batch that PostgreSQL refused settled its claims too


async def test_a_replay_after_the_sellout_is_not_told_sold_out():
    item, sale, crowd = await db(make_sale)(1, 2)
    (u1, a1), (u2, a2) = crowd
    first = await buy(item, sale, u1, a1, "replay-key-1")
    assert first[0]["code"] == "processing"
    assert (await buy(item, sale, u2, a2, "other-key-2"))[0]["code"] == "sold_out"
    assert counter(sale) == 0
    # The same buyer's same key: the gate refuses, PostgreSQL's read finds the order, and the
    # full path (None here) answers with it.
    assert await buy(item, sale, u1, a1, "replay-key-1") is None
    assert await db(Order.objects.filter(buyer_id=u1).count)() == 1


async def test_units_taken_at_the_gate_for_a_buy_postgresql_refuses_go_back():
    item, sale, crowd = await db(make_sale)(5, 1, limit=1)
    (user_id, address_id) = crowd[0]
    assert (await buy(item, sale, user_id, address_id, "limit-key-1"))[0]["code"] == "processing"
    assert counter(sale) == 4
    assert await buy(item, sale, user_id, address_id, "limit-key-2") is None  # over the limit: the full path says so
    assert counter(sale) == 4  # the unit it took at the gate went back
    bucket, units = await db(books)(sale)
    assert (bucket.available, units) == (4, 1)


async def test_with_redis_unreachable_postgresql_answers_alone(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    item, sale, crowd = await db(make_sale)(5, 40)
    placed = await asyncio.gather(*(buy(item, sale, u, a, f"down-key-{i:03d}") for i, (u, a) in enumerate(crowd)))
    answers = codes(placed)
    assert answers.count("processing") == 5
    assert answers.count("sold_out") == 35
    bucket, units = await db(books)(sale)
    assert (bucket.available, bucket.reserved, units) == (0, 5, 5)
    assert gate._down_until[0] > 0  # the gate noticed and stepped aside
