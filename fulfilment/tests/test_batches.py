"""Submits go to the retailer in batches: one call and two transactions of ours for every
due order, each order still keyed by its own number and answered on its own."""

import threading
import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from fulfilment import services
from fulfilment.models import DeliveryAttempt, OutboxMessage
from fulfilment.tests.conftest import make_shop
from fulfilment.tests.test_handoff import deliver, later, message_for
from fulfilment.tests.workers import purge_queue, real_broker
from orders.models import Order, Payment
from retailer import api
from retailer.services import product_stock, sandbox_orders, set_fault


def test_due_submits_go_in_one_call_each_keyed_by_its_own_order(backend):
    shop = make_shop(retailer_stock=10)
    placed = [shop.buy() for _ in range(4)]
    assert deliver(placed[0]) == "ok"
    held = {row["partner_key"]: row for row in sandbox_orders()}
    assert set(held) == {order.number for order in placed}
    assert all(row["times_submitted"] == 1 and row["status"] == "accepted" for row in held.values())
    assert product_stock(sku=shop.item.product.sku) == 6
    attempts = DeliveryAttempt.objects.filter(message__order__in=placed)
    assert attempts.count() == 4 and {a.outcome for a in attempts} == {"ok"}
    assert len({a.started_at for a in attempts}) == 1  # one call to the retailer
    for order in placed:
        order.refresh_from_db()
        assert order.status == "accepted"
        assert order.handoff.retailer_order_id == held[order.number]["reference"]
        assert list(order.events.values_list("to_status", flat=True))[-2:] == ["sent_to_retailer", "accepted"]
    # The other orders' own tasks arrive later and find nothing to do.
    assert [deliver(order) for order in placed[1:]] == ["skipped"] * 3


def test_the_retailer_answers_each_order_of_a_batch_on_its_own(backend):
    shop = make_shop(retailer_stock=2, room_stock=20)
    first, second, third = (shop.buy() for _ in range(3))
    assert deliver(first) == "ok"
    for order in (first, second, third):
        order.refresh_from_db()
    assert (first.status, second.status) == ("accepted", "accepted")
    assert third.status == "cancelled"  # the warehouse ran out: refused, refunded
    assert Payment.objects.get(order=third).status == "refunded"
    assert {r["partner_key"]: r["status"] for r in sandbox_orders()}[third.number] == "refused"
    assert product_stock(sku=shop.item.product.sku) == 0


def test_an_order_the_retailer_cannot_read_is_dead_lettered_alone(shop):
    good, bad = shop.buy(), shop.buy()
    message = message_for(bad)
    message.payload = {**message.payload, "lines": []}  # a payload gone wrong
    message.save(update_fields=["payload"])
    assert deliver(good) == "ok"
    message.refresh_from_db()
    assert message.status == "dead" and "bad_lines" in message.last_error
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.status == "accepted" and bad.status == "sent_to_retailer"  # staff see it in admin
    assert [row["partner_key"] for row in sandbox_orders()] == [good.number]


@pytest.mark.parametrize("results", [[{"order": {}}], [{"order": {}}, {"order": {"status": ""}}]])
def test_an_answer_without_a_result_for_each_order_is_retried_not_applied(shop, monkeypatch, results):
    placed = [shop.buy(), shop.buy()]
    monkeypatch.setitem(api.ENDPOINTS, "orders/submit-batch", lambda payload: {"results": results})
    assert deliver(placed[0]) == "retry"
    for order in placed:
        message = message_for(order)
        assert message.status == "pending" and "bad_answer" in message.last_error
        order.refresh_from_db()
        assert order.status == "sent_to_retailer"
    assert not hasattr(Order.objects.get(pk=placed[0].pk), "handoff")


def test_a_whole_call_refused_retries_each_order_rather_than_dead_lettering_it(shop, settings):
    """A 4xx on the whole call (a signature or clock problem, a rate limit) says nothing
    against any one order: retried on its backoff, dead only after the usual attempts."""
    settings.FULFILMENT_MAX_ATTEMPTS = 2
    placed = [shop.buy(), shop.buy()]
    set_fault(kind="error", status_code=401, times=2, endpoint="orders/submit")
    assert deliver(placed[0]) == "retry"
    for order in placed:
        message = message_for(order)
        assert message.status == "pending" and "injected_fault" in message.last_error
    assert services.outbox_deliver(message_id=message_for(placed[0]).pk, now=later(3600)) == "dead"
    assert {message_for(o).status for o in placed} == {"dead"}  # after the attempts allowed, as for any failure


def test_in_process_a_kick_sends_one_batch_and_returns(shop, settings):
    """The embedded default runs the drainer inside the request that confirmed an order:
    it sends one batch, not everyone's backlog, and the next kick or the sweep go on."""
    settings.FULFILMENT_BATCH_SIZE = 2
    placed = [shop.buy() for _ in range(5)]
    assert services.outbox_deliver_submits() == 2
    assert [services.outbox_deliver_submits() for _ in range(3)] == [2, 1, 0]
    assert {Order.objects.get(pk=o.pk).status for o in placed} == {"accepted"}


def test_a_sender_skips_an_order_someone_else_holds_and_leaves_it_due(transactional_db):
    shop = make_shop()
    mine, held = shop.buy(), shop.buy()
    locked, release = threading.Event(), threading.Event()

    def hold():  # another transaction holds the second order's row (a buyer cancelling, say)
        with transaction.atomic():
            Order.objects.select_for_update().get(pk=held.pk)
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        assert deliver(mine) == "ok"  # did not wait for the held order
        assert message_for(held).status == "pending"
    finally:
        release.set()
        holder.join(10)
    assert deliver(held) == "ok"
    assert sorted(r["partner_key"] for r in sandbox_orders()) == sorted([mine.number, held.number])


def test_two_senders_at_once_hand_each_order_over_once(backend, settings):
    settings.FULFILMENT_BATCH_SIZE = 3
    shop = make_shop(retailer_stock=40, room_stock=40)
    placed = [shop.buy() for _ in range(12)]
    start = threading.Barrier(2)

    def sender():  # tasks run in-process here: each call sends one batch
        start.wait(10)
        try:
            while services.outbox_deliver_submits():
                pass
        finally:
            connection.close()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    held = sandbox_orders()
    assert sorted(r["partner_key"] for r in held) == sorted(o.number for o in placed)
    assert all(r["times_submitted"] == 1 for r in held)
    assert product_stock(sku=shop.item.product.sku) == 28
    assert set(Order.objects.filter(pk__in=[o.pk for o in placed]).values_list("status", flat=True)) == {"accepted"}
    assert DeliveryAttempt.objects.count() == 12


# --- the kick: one drainer queued, however many orders are confirmed ---------------------


@pytest.fixture
def broker(transactional_db):
    """Tasks go to Redis (no worker takes them): what a web process does in production."""
    purge_queue(settings.REDIS_URL, settings.REDIS_PREFIX)
    redis.Redis.from_url(settings.REDIS_URL).delete(services.kick_flag())
    with real_broker(settings.REDIS_URL):
        yield redis.Redis.from_url(settings.REDIS_URL)
    purge_queue(settings.REDIS_URL, settings.REDIS_PREFIX)


def queued_tasks(client) -> list[str]:
    import json

    queue = f"{settings.REDIS_PREFIX}:celery:celery"
    return [json.loads(raw)["headers"]["task"] for raw in client.lrange(queue, 0, -1)]


def test_many_confirmations_queue_one_drainer_and_it_sends_them_all(broker, settings):
    settings.FULFILMENT_DISPATCH_ON_COMMIT = True
    settings.FULFILMENT_BATCH_SIZE = 2
    shop = make_shop()
    placed = [shop.buy() for _ in range(5)]
    assert queued_tasks(broker).count("fulfilment.tasks.deliver_submits") == 1  # one, not five
    # The drainer runs (here, in this process): everything due, in batches of two.
    assert services.outbox_deliver_submits() == 5
    for order in placed:
        order.refresh_from_db()
        assert order.status == "accepted"
    started = DeliveryAttempt.objects.values_list("started_at", flat=True)
    assert len(set(started)) == 3
    # Full batches queued helpers for a backlog; the flag is free again, so the next
    # confirmation queues a drainer of its own.
    assert queued_tasks(broker).count("fulfilment.tasks.deliver_submits") == 3
    assert broker.get(services.kick_flag()) is None
    late = shop.buy()
    assert queued_tasks(broker).count("fulfilment.tasks.deliver_submits") == 4
    assert services.outbox_deliver_submits() == 1
    late.refresh_from_db()
    assert late.status == "accepted"


def test_a_lost_drainer_holds_the_kick_only_for_a_while(broker, settings):
    settings.FULFILMENT_DISPATCH_ON_COMMIT = True
    shop = make_shop()
    shop.buy()
    assert queued_tasks(broker).count("fulfilment.tasks.deliver_submits") == 1
    # That drainer is lost (say, with Redis' queue): the flag it left lapses by itself.
    purge_queue(settings.REDIS_URL, settings.REDIS_PREFIX)
    assert 0 < broker.pttl(services.kick_flag()) <= services.KICK_HOLD_MS
    shop.buy()
    assert "fulfilment.tasks.deliver_submits" not in queued_tasks(broker)  # held; the sweep would send it
    broker.pexpire(services.kick_flag(), 50)  # as if KICK_HOLD_MS had passed
    time.sleep(0.2)
    shop.buy()
    assert queued_tasks(broker).count("fulfilment.tasks.deliver_submits") == 1
    assert services.outbox_deliver_submits() == 3


def test_a_kick_with_redis_down_loses_nothing(transactional_db, settings):
    settings.FULFILMENT_DISPATCH_ON_COMMIT = True
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    from streams import fanout

    saved, fanout._sync_client = fanout._sync_client, None
    try:
        with real_broker("redis://127.0.0.1:1/0"):
            order = make_shop().buy()  # the kick fails quietly after the commit
    finally:
        fanout._sync_client = saved
    message = OutboxMessage.objects.get(order=order)
    assert message.status == "pending"
    # Eager here: the sweep's task sends it (once the kick is overdue).
    assert services.outbox_sweep(now=timezone.now() + timedelta(seconds=20)) == 1
    order.refresh_from_db()
    assert order.status == "accepted"
