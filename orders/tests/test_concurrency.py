"""Many buyers at once, against the real PostgreSQL: never an oversold unit.

Each buyer runs in a thread with its own database connection (Django keeps one per
thread). PostgreSQL allows 100 connections and other test runs share it, so at most
THREADS buyers are inside the service at the same moment; every one of the 1,000 gets
an answer.
"""

import queue
import random
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Address, User
from orders import errors, services
from orders.models import Order, OrderEvent, OrderLine, Payment, StockBucket
from orders.payments import signed_callback
from orders.tests import factories as f

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 40
BUYERS = 1000
STOCK = 100
REPETITIONS = 20


def run_parallel(jobs, threads=THREADS):
    """Run callables on `threads` threads (own DB connection each); results in order."""
    work: queue.Queue = queue.Queue()
    for i, job in enumerate(jobs):
        work.put((i, job))
    results = [None] * len(jobs)
    start = threading.Barrier(min(threads, len(jobs)))

    def worker():
        start.wait()
        try:
            while True:
                try:
                    i, job = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[i] = ("ok", job())
                except errors.OrderError as exc:
                    results[i] = ("refused", exc)
                except Exception as exc:  # a crash, deadlock or integrity error: the test fails on it
                    results[i] = ("crash", exc)
        finally:
            connection.close()

    pool = [threading.Thread(target=worker) for _ in range(min(threads, len(jobs)))]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert not any(t.is_alive() for t in pool), "a buyer never got an answer"
    return results


def make_buyers(n):
    users = User.objects.bulk_create([User(username=f"crowd{i}", password="!") for i in range(n)])
    addresses = Address.objects.bulk_create(
        [Address(user=u, recipient="Li Lei", phone="+86 139 0000 0000", province="Beijing", city="Beijing",
                 line="1 Chang'an Avenue", is_default=True) for u in users]
    )  # fmt: skip
    return list(zip(users, addresses, strict=True))


@pytest.fixture
def crowd():
    return make_buyers(BUYERS)


def buy_job(user, address, item, qty, key):
    return lambda: services.order_place(
        user=user, shelf_item_id=item.pk, quantity=qty, address_id=address.pk, payment_method=f.CARD_OK,
        idempotency_key=key,
    )  # fmt: skip


def assert_clean_sellout(results, item, max_units):
    crashes = [r[1] for r in results if r[0] == "crash"]
    assert not crashes, f"{len(crashes)} buyers crashed, first: {crashes[0]!r}"
    refused = [r[1] for r in results if r[0] == "refused"]
    assert all(isinstance(e, errors.SoldOut) for e in refused), {type(e).__name__ for e in refused}
    paid = [r[1] for r in results if r[0] == "ok"]
    assert all(p.code == "paid" for p in paid)
    bucket = StockBucket.objects.get(shelf_item=item, kind="regular")
    units = OrderLine.objects.filter(shelf_item=item, order__status="paid").aggregate(n=Sum("quantity"))["n"] or 0
    assert bucket.available >= 0 and bucket.reserved == 0
    assert bucket.sold == units <= max_units
    assert bucket.sold + bucket.available == max_units
    assert Order.objects.filter(lines__shelf_item=item).count() == len(paid)
    return units


def test_thousand_buyers_hundred_units_twenty_times(crowd):
    host = f.host("crowdhost")
    for rep in range(REPETITIONS):
        item = f.shelf_item(stock=STOCK, room_obj=f.room(host_profile=host))
        jobs = [buy_job(u, a, item, 1, f"buy-r{rep}-u{u.pk}") for u, a in crowd]
        results = run_parallel(jobs)
        units = assert_clean_sellout(results, item, STOCK)
        assert units == STOCK, f"repetition {rep}: sold {units}"
        assert sum(r[0] == "refused" for r in results) == BUYERS - STOCK


def test_quantities_one_to_three_never_more_than_the_stock(crowd):
    host = f.host("crowdhost3")
    rng = random.Random(5)
    for rep in range(REPETITIONS):
        item = f.shelf_item(stock=STOCK, room_obj=f.room(host_profile=host))
        jobs = [buy_job(u, a, item, rng.randint(1, 3), f"buy-q{rep}-u{u.pk}") for u, a in crowd]
        results = run_parallel(jobs)
        units = assert_clean_sellout(results, item, STOCK)
        # 1,000 buyers asking for 1-3 each: the last units always find a taker
        assert STOCK - 2 <= units <= STOCK


@pytest.mark.parametrize("card,code", [(f.CARD_OK, "paid"), (f.CARD_DECLINE, "payment_declined"),
                                       (f.CARD_CONFIRM, "awaiting_confirmation")])  # fmt: skip
def test_same_key_fifty_times_at_once_is_one_order_one_payment(card, code):
    item = f.shelf_item(stock=10)
    buyer = f.user()
    addr = f.address(buyer)
    job = lambda: services.order_place(  # noqa: E731
        user=buyer, shelf_item_id=item.pk, quantity=2, address_id=addr.pk, payment_method=card,
        idempotency_key="tap-once-please",
    )  # fmt: skip
    results = run_parallel([job] * 50, threads=50)
    assert all(r[0] == "ok" for r in results), [r for r in results if r[0] != "ok"][:1]
    answers = [r[1].as_dict() for r in results]
    assert all(a == answers[0] for a in answers)
    assert answers[0]["code"] == code
    assert Order.objects.count() == 1 and Payment.objects.count() == 1
    bucket = StockBucket.objects.get(shelf_item=item)
    assert bucket.available + bucket.reserved + bucket.sold == 10
    assert bucket.available == (10 if code == "payment_declined" else 8)


def test_same_key_different_body_at_once_is_refused():
    item = f.shelf_item(stock=10)
    buyer = f.user()
    addr = f.address(buyer)

    def job(qty):
        return lambda: services.order_place(
            user=buyer, shelf_item_id=item.pk, quantity=qty, address_id=addr.pk, payment_method=f.CARD_OK,
            idempotency_key="one-key-two-bodies",
        )  # fmt: skip

    results = run_parallel([job(1 + i % 2) for i in range(20)], threads=20)
    assert not [r for r in results if r[0] == "crash"]
    winners = {r[1].order.lines.get().quantity for r in results if r[0] == "ok"}
    assert len(winners) == 1
    refused = [r[1] for r in results if r[0] == "refused"]
    assert refused and all(isinstance(e, errors.IdempotencyConflict) for e in refused)
    assert Order.objects.count() == 1 and Payment.objects.count() == 1


def test_expiry_runs_twice_and_races_a_late_payment_stock_returns_once():
    """Expiry jobs, the sweep and the bank's late 'succeeded' callback all at once."""
    outcomes = set()
    for rep in range(20):
        item = f.shelf_item(stock=5)
        buyer = f.user()
        addr = f.address(buyer)
        result = services.order_place(user=buyer, shelf_item_id=item.pk, quantity=2, address_id=addr.pk,
                                      payment_method=f.CARD_CONFIRM, idempotency_key=f"late-pay-{rep}")  # fmt: skip
        order = Order.objects.get(number=result.order.number)
        Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        reference = order.payment.reference

        def callback(i):
            body, headers = signed_callback(reference=reference, outcome="succeeded", delivery_id=f"dl-{rep}-{i}")
            return lambda: services.payment_callback_handle(
                body=body, signature=headers["X-Payment-Signature"], timestamp=headers["X-Payment-Timestamp"]
            )

        jobs = [lambda: services.reservation_expire(order_id=order.pk)] * 3 + [services.reservations_sweep] * 2
        jobs += [callback(i) for i in range(3)]
        random.Random(rep).shuffle(jobs)
        results = run_parallel(jobs, threads=len(jobs))
        assert not [r for r in results if r[0] != "ok"]
        order.refresh_from_db()
        bucket = StockBucket.objects.get(shelf_item=item)
        payment = Payment.objects.get(order=order)
        assert bucket.available + bucket.reserved + bucket.sold == 5 and bucket.reserved == 0
        releases = OrderEvent.objects.filter(order=order, to_status__in=["expired", "paid"]).count()
        assert releases == 1
        if order.status == "expired":
            assert (bucket.available, bucket.sold) == (5, 0)  # returned exactly once
            assert payment.status == Payment.Status.REFUNDED  # late money goes back
        else:
            assert order.status == "paid" and (bucket.available, bucket.sold) == (3, 2)
            assert payment.status == Payment.Status.SUCCEEDED
        outcomes.add(order.status)
    assert outcomes <= {"expired", "paid"}
