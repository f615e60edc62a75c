"""Hand-off benchmark: confirmed -> accepted-by-retailer through the real stack.

Starts, on a fresh bench database: the sandbox retailer's HTTP API (uvicorn serving
config.asgi, a separate process), Celery workers (`celery -A config worker`, Redis
broker) that send orders to it over signed HTTP, and a sweep every 2 s (beat's job).

1. Latency: reserves orders (real `order_place`) with a card whose bank confirms later,
   then confirms them at a steady rate through the real confirm service
   (`apply_charge_result`: paid, the outbox row in that transaction, the kick after
   commit), from `--confirmers` processes as web processes would, and measures, per
   order, the time from the `paid` audit row to the `accepted` one. The first
   `--warmup` seconds of the stream are handed off but not timed (every worker's first
   connections). `offered_per_s` is the rate the timed orders' `paid` rows show. Placing
   an order costs more CPU than handing it off; placing them in the timed part would
   starve the very workers being measured.
2. Throughput: confirms a batch in one transaction with no kick, then queues a `deliver`
   task per order at once and times the drain from the commit (`per_s`).
3. Baseline, same run: the same hand-off work (`outbox_deliver` per order, which sends
   its order with the other due ones in one batch, same retailer over HTTP) in a plain
   loop in this process, no queue, the Celery worker stopped (`baseline_per_s`).

Lost = confirmed orders the retailer does not hold once the run settles; duplicated =
units the retailer shipped beyond what was ordered (a second shipment of any order).

    python bench/handoff.py [--rate 100] [--seconds 10] [--batch 600] [--workers 6] [--warmup 3] [--confirmers 2]

Needs DATABASE_URL (any database on the server; the bench makes its own) and REDIS_URL.
Prints a table and a final JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import free_port, percentile, prepare_database, use_local_stack_env  # noqa: E402

PREFIX = "benchhandoff"
CONFIRMED = {"paid", "sent_to_retailer", "accepted", "packed", "shipped", "delivered"}


def start_retailer(env: dict) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    log = open(ROOT / "var" / "bench-handoff-retailer.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--workers", "2"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("retailer server did not start; see var/bench-handoff-retailer.log")


def make_shop(n_buyers: int, stock: int):
    from decimal import Decimal

    from django.utils import timezone

    from accounts.models import Address, HostProfile, User
    from catalog.models import Product, Retailer
    from retailer.services import product_put
    from streams.models import Room, ShelfItem

    host_user = User.objects.create(username="bench-host")
    host = HostProfile.objects.create(user=host_user, handle="bench-host", status=HostProfile.Status.APPROVED)
    room = Room.objects.create(host=host, title="Bench room", scheduled_start=timezone.now(), status=Room.Status.LIVE)
    retailer, _ = Retailer.objects.get_or_create(code="jdm", defaults={"name": "JD Mall"})
    product = Product.objects.create(retailer=retailer, sku="BENCH-1", title="Bench earbuds", brand="Sonic",
                                     list_price=Decimal("199.00"), self_operated=True, sellable=True,
                                     retailer_stock=stock)  # fmt: skip
    item = ShelfItem.objects.create(room=room, product=product, live_price=Decimal("149.00"), per_user_limit=30000)
    product_put(sku="BENCH-1", stock=stock, title="Bench earbuds")
    users = User.objects.bulk_create([User(username=f"bench-buyer-{i}") for i in range(n_buyers)])
    Address.objects.bulk_create([
        Address(user=u, recipient="Wang Fang", phone="+86 138 0000 0000", province="Zhejiang", city="Hangzhou",
                district="Xihu", line="18 Wensan Road", postal_code="310000")
        for u in users
    ])  # fmt: skip
    addresses = dict(Address.objects.values_list("user_id", "pk"))
    return item, [(u, addresses[u.pk]) for u in users]


class Buyer:
    def __init__(self, item, buyers):
        self.item, self.buyers = item, buyers
        self.lock, self.n = threading.Lock(), 0

    def _place(self, payment_method: str):
        from django.db import connection

        from orders import services

        with self.lock:
            self.n += 1
            n = self.n
        user, address_id = self.buyers[n % len(self.buyers)]
        result = services.order_place(
            user=user, shelf_item_id=self.item.pk, quantity=1, address_id=address_id,
            payment_method=payment_method, idempotency_key=f"bench-{n:08d}",
        )  # fmt: skip
        connection.close_if_unusable_or_obsolete()
        return result

    def buy(self) -> str:
        """Reserve and pay in one go, the way a buyer's request does."""
        result = self._place("4242 4242 4242 4242")
        # A fast worker may have moved the order past "paid" before the answer was read.
        assert result.ok and result.order.status in CONFIRMED, (result.order.status, result.message)
        return result.order.number

    def reserve_awaiting_bank(self) -> tuple[int, str]:
        """Reserve and pay with a card whose bank confirms later (3-D Secure): the order waits
        in pending_payment with its payment requires_confirmation. (payment id, order number)"""
        from orders.models import Payment
        from orders.payments import CARD_NEEDS_CONFIRMATION

        result = self._place(CARD_NEEDS_CONFIRMATION)
        assert result.ok and result.code == "awaiting_confirmation", (result.code, result.message)
        return Payment.objects.filter(order=result.order).values_list("pk", flat=True).get(), result.order.number

    @staticmethod
    def bank_confirms(payment_id: int) -> None:
        """The bank's yes arrives: the same service the gateway's answer or signed callback
        calls. It marks the order paid, writes the outbox row in that transaction and kicks
        the hand-off after commit."""
        from django.db import connection

        from orders import services

        outcome = services.apply_charge_result(payment_id=payment_id, outcome="succeeded")
        connection.close_if_unusable_or_obsolete()
        assert outcome == "paid", outcome


def _confirm_share(payment_ids: list[int], start: float, rate: float, first: int, step: int, env: dict) -> None:
    """One confirming process: payment `first + k*step` is confirmed at `start + (first + k*step) / rate`
    (time.monotonic is system-wide on Linux, so every process shares the schedule)."""
    os.environ.update(env)
    import django

    django.setup()
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = []
        for i in range(first, len(payment_ids), step):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(Buyer.bank_confirms, payment_ids[i]))
        for f in futures:
            f.result()


def confirm_at_rate(payment_ids: list[int], *, rate: float, processes: int) -> None:
    """The bank's answers arrive at `rate` a second, confirmed in `processes` processes the
    way web processes would confirm them (one Python process is bound by its GIL well short
    of 100 confirmations a second)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    env = {k: v for k, v in os.environ.items() if k.isupper()}
    with ctx.Pool(processes) as pool:
        start = time.monotonic() + 5  # the processes start and set Django up first
        results = [
            pool.apply_async(_confirm_share, (payment_ids, start, rate, k, processes, env)) for k in range(processes)
        ]
        for r in results:
            r.get()


def offered_rate(numbers: set[str]) -> float:
    """The rate the timed orders were actually confirmed at: their `paid` audit rows."""
    from django.db.models import Max, Min

    from orders.models import OrderEvent

    span = OrderEvent.objects.filter(order__number__in=numbers, to_status="paid").aggregate(
        first=Min("at"), last=Max("at")
    )
    seconds = (span["last"] - span["first"]).total_seconds()
    return (len(numbers) - 1) / seconds if seconds > 0 else 0.0


def wait_accepted(numbers: set[str], timeout: float) -> tuple[float, int]:
    from orders.models import Order

    start = time.monotonic()
    while True:
        left = len(numbers) - Order.objects.filter(number__in=numbers, status="accepted").count()
        if left == 0 or time.monotonic() - start > timeout:
            return time.monotonic() - start, left
        time.sleep(0.05)


def latencies_ms(numbers: set[str]) -> list[float]:
    from orders.models import OrderEvent

    paid, accepted = {}, {}
    for number, to, at in OrderEvent.objects.filter(order__number__in=numbers, to_status__in=["paid", "accepted"]) \
            .values_list("order__number", "to_status", "at"):  # fmt: skip
        (paid if to == "paid" else accepted)[number] = at
    return [(accepted[n] - paid[n]).total_seconds() * 1000 for n in numbers if n in accepted and n in paid]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--batch", type=int, default=600)
    parser.add_argument("--workers", type=int, default=6, help="Celery worker concurrency (prefork)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of the stream handed off but not timed")
    parser.add_argument("--confirmers", type=int, default=2, help="processes confirming payments at the rate")
    args = parser.parse_args()
    use_local_stack_env()  # production settings with the sandboxes allowed (docs/operations.md)
    (ROOT / "var").mkdir(exist_ok=True)

    db_url = prepare_database(os.environ["DATABASE_URL"], "bench_handoff")
    redis_url = os.environ["REDIS_URL"]
    retailer_env = {**os.environ, "DATABASE_URL": db_url, "REDIS_PREFIX": PREFIX, "QUIET_EMBEDDED": "1",
                    "DJANGO_SETTINGS_MODULE": "config.settings", "DB_CONN_MAX_AGE": "60"}  # fmt: skip
    retailer, retailer_url = start_retailer(retailer_env)
    common = {**retailer_env, "RETAILER_BACKEND": "http", "RETAILER_API_URL": retailer_url + "/retailer-api/",
              "PAYMENT_SANDBOX_CONFIRM_SECONDS": "0", "ORDERS_STOCK_COALESCE_SECONDS": "1"}  # fmt: skip
    os.environ.update(common)
    import django

    django.setup()
    import logging

    from django.conf import settings

    logging.getLogger("httpx").setLevel(logging.WARNING)

    from fulfilment import services
    from fulfilment.models import OutboxMessage
    from fulfilment.tests.workers import Worker, purge_queue
    from retailer.services import product_stock, sandbox_orders

    purge_queue(redis_url, PREFIX)
    n_latency = int(args.rate * args.seconds)
    total = int(args.rate * args.warmup) + n_latency + 2 * args.batch
    item, buyers = make_shop(n_buyers=500, stock=total + 100)
    worker = Worker(database_url=db_url, redis_url=redis_url, prefix=PREFIX, concurrency=args.workers,
                    extra_env={**common, "FULFILMENT_LEASE_SECONDS": "60"})  # fmt: skip
    stop_sweep = threading.Event()

    def sweeper():
        while not stop_sweep.wait(2):
            services.outbox_sweep()

    threading.Thread(target=sweeper, daemon=True).start()
    buyer = Buyer(item, buyers)
    time.sleep(4)  # the worker boots
    try:
        # 1. steady rate, kicked after commit. The orders are reserved first, awaiting their
        # bank's confirmation; the timed part confirms them at the rate (placing an order
        # costs more CPU than handing it off, and would starve the workers it is measuring).
        # The first --warmup seconds of the stream are handed off but not timed: they pay
        # for every worker's first database and retailer connections.
        n_warm = int(args.rate * args.warmup)
        with ThreadPoolExecutor(max_workers=4) as pool:
            awaiting = list(pool.map(lambda _: buyer.reserve_awaiting_bank(), range(n_warm + n_latency)))
        warm = {number for _, number in awaiting[:n_warm]}
        numbers: set[str] = {number for _, number in awaiting[n_warm:]}
        payment_ids = [payment_id for payment_id, _ in awaiting]
        confirm_at_rate(payment_ids, rate=args.rate, processes=args.confirmers)
        _, lost_latency = wait_accepted(warm | numbers, timeout=60)
        lat = latencies_ms(numbers)
        offered = offered_rate(numbers)

        # 2. throughput: a backlog that appears at once. Its orders are confirmed in one
        # transaction (a drainer still running from part 1 must not take them one by one
        # as they come), then a `deliver` task is queued per order, as the sweep would.
        with ThreadPoolExecutor(max_workers=4) as pool:
            pending = list(pool.map(lambda _: buyer.reserve_awaiting_bank(), range(args.batch)))
        settings.FULFILMENT_DISPATCH_ON_COMMIT = False
        from django.db import transaction

        from orders.services import apply_charge_result

        with transaction.atomic():
            for payment_id, _ in pending:
                assert apply_charge_result(payment_id=payment_id, outcome="succeeded") == "paid"
        t0 = time.monotonic()
        batch = {number for _, number in pending}
        ids = list(OutboxMessage.objects.filter(order__number__in=batch).values_list("pk", flat=True))
        from fulfilment import tasks

        for message_id in ids:
            tasks.deliver.delay(message_id)
        drain, lost_batch = wait_accepted(batch, timeout=120)
        per_s = args.batch / drain

        # 3. baseline: the same hand-off work in a plain loop, no queue and no worker
        stop_sweep.set()
        worker.stop()
        with ThreadPoolExecutor(max_workers=8) as pool:
            base = set(pool.map(lambda _: buyer.buy(), range(args.batch)))
        ids = list(OutboxMessage.objects.filter(order__number__in=base).values_list("pk", flat=True))
        t0 = time.monotonic()
        for message_id in ids:
            services.outbox_deliver(message_id=message_id)
        baseline_per_s = args.batch / (time.monotonic() - t0)
        _, lost_base = wait_accepted(base, timeout=10)
    finally:
        stop_sweep.set()
        worker.stop()
        retailer.terminate()
        retailer.wait(10)

    everything = warm | numbers | batch | base
    held = [row for row in sandbox_orders() if row["partner_key"] in everything]
    shipped_units = (total + 100) - product_stock(sku="BENCH-1")
    lost = len(everything - {row["partner_key"] for row in held}) + lost_latency + lost_batch + lost_base
    duplicated = max(0, shipped_units - len(everything)) + (len(held) - len({r["partner_key"] for r in held}))
    result = {
        "orders": len(everything),
        "lost": lost,
        "duplicated": duplicated,
        "rate": args.rate,
        "offered_per_s": round(offered, 1),
        "timed": len(lat),
        "warmup_s": args.warmup,
        "p50_ms": round(percentile(lat, 50), 1),
        "p99_ms": round(percentile(lat, 99), 1),
        "max_ms": round(max(lat), 1) if lat else None,
        "mean_ms": round(statistics.mean(lat), 1) if lat else None,
        "per_s": round(per_s, 1),
        "baseline_per_s": round(baseline_per_s, 1),
        "worker_concurrency": args.workers,
    }
    print(f"{'orders':>8} {'lost':>5} {'dup':>4} {'p50 ms':>8} {'p99 ms':>8} {'per_s':>8} {'baseline':>9}")
    print(f"{result['orders']:>8} {lost:>5} {duplicated:>4} {result['p50_ms']:>8} {result['p99_ms']:>8} "
          f"{result['per_s']:>8} {result['baseline_per_s']:>9}")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
