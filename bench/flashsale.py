"""Flash-sale benchmark: N websocket buyers in one live room try to buy at the same moment.

Starts the production-style stack (PostgreSQL, Redis, uvicorn serving config.asgi with
--workers 2, persistent DB connections), makes a live room in a fresh bench database,
connects N logged-in buyers to /ws/rooms/<id>/, starts a flash sale of S units (limit 1
per buyer) a few seconds ahead, and at the sale's start every buyer sends one `buy`.
Per buyer it records the time from sending to the `buy.result` frame (the ack: reserved
or refused); it then checks the books: units taken never exceed S, the bucket never went
below zero, and every buyer got exactly one `buy.result`.

In the same run it measures two baselines, with no Django around them:

* `baseline_attempts_per_s`: the gate every buy meets first, the Redis admission script
  (`orders.gate.TAKE_LUA`, one attempt per call), N attempts for S units from one Python
  process, one connection;
* `pg_gate_attempts_per_s`: PostgreSQL's gate behind it, which decides every unit sold (one
  conditional `UPDATE ... SET available = available - 1 WHERE id = 1 AND available >= 1`)
  from as many concurrent connections as the web tier gives it (web processes x
  ORDERS_FASTPATH_POOL_SIZE).

`ratio` is ours over the first, `pg_ratio` over the second.

    python bench/flashsale.py [--buyers 2000] [--stock 100,1000] [--workers 2] [--pool 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import free_port, percentile, prepare_database, use_local_stack_env, wait_http  # noqa: E402
from _wsclient import ClientSocket, client_frame, connect  # noqa: E402

DB_NAME = "bench_flashsale"


def drop_database(base_url: str) -> None:
    import psycopg

    admin = urlparse(base_url)._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


# --- the room and the crowd (built in this process with the real models) ---------------


def make_room_and_buyers(n: int, stocks: list[int]) -> dict:
    import django

    django.setup()
    from datetime import timedelta
    from decimal import Decimal

    from django.conf import settings
    from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    from accounts.models import Address, HostProfile, User
    from catalog.models import Product, Retailer
    from streams import services

    host_user = User.objects.create_user(username="benchhost", password="bench-pass-123")
    host = HostProfile.objects.create(user=host_user, handle="benchhost", status=HostProfile.Status.APPROVED)
    retailer = Retailer.objects.create(code="jdm", name="JD Mall Self-Operated")
    room = services.room_create(host=host, title="Flash sale bench", scheduled_start=timezone.now())
    items = []  # one product per round, so each round's sale starts from a clean shelf
    for i, stock in enumerate(stocks):
        product = Product.objects.create(
            retailer=retailer, sku=f"FLASH-{i}", title=f"Noise-cancelling headphones {i}", brand="Acme",
            list_price=Decimal("599.00"), self_operated=True, in_feed=True, sellable=True, retailer_stock=stock * 10,
        )  # fmt: skip
        items.append(services.shelf_add(room=room, product_id=product.pk, live_price="399.00", by=host_user).pk)
    services.room_go_live(room=room)

    users = User.objects.bulk_create([User(username=f"buyer{i:05d}", password="!") for i in range(n)])
    Address.objects.bulk_create(
        [Address(user=u, recipient=f"Buyer {i}", phone="+86 139 0000 0000", province="Zhejiang", city="Hangzhou",
                 line=f"{i} Wensan Road", is_default=True) for i, u in enumerate(users)]
    )  # fmt: skip
    addresses = dict(Address.objects.values_list("user_id", "pk"))
    store = SessionStore()
    expire = timezone.now() + timedelta(days=1)
    sessions, cookies = [], []
    for u in users:
        key = uuid.uuid4().hex
        data = {SESSION_KEY: str(u.pk), "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
                HASH_SESSION_KEY: u.get_session_auth_hash()}  # fmt: skip
        sessions.append(Session(session_key=key, session_data=store.encode(data), expire_date=expire))
        cookies.append((f"{settings.SESSION_COOKIE_NAME}={key}", addresses[u.pk]))
    Session.objects.bulk_create(sessions, batch_size=1000)
    return {"room": room.pk, "items": items, "host": host_user.pk, "buyers": cookies}


def start_sale(*, host_id: int, item_id: int, stock: int, lead: float) -> tuple[int, float]:
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from accounts.models import User
    from orders import services

    starts_at = timezone.now() + timedelta(seconds=lead)
    sale = services.flash_sale_start(
        user=User.objects.get(pk=host_id), shelf_item_id=item_id, sale_price="329.00", quantity=stock,
        per_user_limit=1, duration_seconds=600, starts_at=starts_at,
    )  # fmt: skip
    connection.close()
    return sale.pk, starts_at.timestamp()


def books(sale_id: int, stock: int) -> dict:
    from django.db.models import Sum

    from orders.models import FlashSale, OrderLine

    sale = FlashSale.objects.select_related("bucket").get(pk=sale_id)
    b = sale.bucket
    lines = OrderLine.objects.filter(flash_sale=sale).exclude(order__status__in=["payment_failed", "expired"])
    return {
        "taken": b.initial - b.available,
        "available": b.available,
        "reserved": b.reserved,
        "paid_units": b.sold,
        "line_units": lines.aggregate(n=Sum("quantity"))["n"] or 0,
        "conserved": b.available + b.reserved + b.sold == b.initial == stock,
    }


# --- the buyers --------------------------------------------------------------------------


class Buyer:
    __slots__ = ("address", "cookie", "replies", "sent", "snapshot", "ws")

    def __init__(self, cookie: str, address: int):
        self.cookie, self.address = cookie, address
        self.ws: ClientSocket | None = None
        self.snapshot: asyncio.Future | None = None
        self.sent = 0.0
        self.replies: list[tuple[float, dict]] = []

    def on_message(self, at: float, payload: bytes) -> None:
        """Called as each frame arrives: a buy's answer is kept with its arrival time; the
        room's other frames (stock, ticker, counts) are read off the socket and dropped."""
        if payload.startswith(b'{"type":"buy.result"'):
            self.replies.append((at, json.loads(payload)))
        elif self.snapshot is not None and b'"type":"snapshot"' in payload[:40] and not self.snapshot.done():
            self.snapshot.set_result(None)


async def connect_all(url: str, origin: str, buyers: list[Buyer]) -> float:
    """Connect every buyer and wait for each socket's snapshot. The sockets are read from
    then on as data arrives (a socket nobody reads would fall behind and be closed by the
    server as too slow)."""
    sem = asyncio.Semaphore(64)

    async def one(b: Buyer):
        async with sem:
            for attempt in range(6):
                b.snapshot = asyncio.get_running_loop().create_future()
                try:
                    b.ws = await connect(url, b.on_message, origin=origin, headers={"Cookie": b.cookie})
                    await asyncio.wait_for(b.snapshot, 60)
                    break
                except Exception:
                    if b.ws is not None:
                        b.ws.transport.abort()
                        b.ws = None
                    if attempt == 5:
                        raise
                    await asyncio.sleep(0.3 * (attempt + 1))

    start = time.perf_counter()
    await asyncio.gather(*(one(b) for b in buyers))
    return time.perf_counter() - start


async def flash_round(buyers: list[Buyer], *, sale_id: int, item_id: int, starts_at: float, stock: int,
                      settle_s: float) -> dict:  # fmt: skip
    for b in buyers:
        b.replies.clear()
    # Every buyer fires at the sale's start (the server's clock is this machine's clock).
    await asyncio.sleep(max(0.0, starts_at - time.time() + 0.05))
    frames = [  # made (and masked) before the clock starts
        client_frame(json.dumps({"type": "buy", "item": item_id, "sale": sale_id, "quantity": 1,
                                 "address": b.address, "card": "4242 4242 4242 4242",
                                 "key": "bench-" + uuid.uuid4().hex[:20], "ref": "b"}).encode())
        for b in buyers
    ]  # fmt: skip
    t_first = time.perf_counter()
    unsent = 0
    for b, frame in zip(buyers, frames, strict=True):
        b.sent = time.perf_counter()
        if not b.ws.send_frame(frame):
            unsent += 1
            print(f"buy not sent: the socket is closed (code {b.ws.close_code})", file=sys.stderr)
    t_sent = time.perf_counter()
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline and any(not b.replies for b in buyers):
        await asyncio.sleep(0.02)
    t_last = max((b.replies[0][0] for b in buyers if b.replies), default=time.perf_counter())
    await asyncio.sleep(settle_s)  # any second reply would arrive now

    silent = [b for b in buyers if not b.replies]
    if silent:
        states: dict[str, int] = {}
        for b in silent:
            state = f"{'open' if b.ws.open else 'closed'}/{b.ws.close_code}"
            states[state] = states.get(state, 0) + 1
        print(f"{len(silent)} buyers got no answer; their sockets: {states}", file=sys.stderr)
    acks = [(b.replies[0][0] - b.sent) * 1000 for b in buyers if b.replies]
    codes: dict[str, int] = {}
    by_code: dict[str, list[float]] = {}
    for b in buyers:
        for _, reply in b.replies:
            codes[reply.get("code", "?")] = codes.get(reply.get("code", "?"), 0) + 1
        if b.replies:
            by_code.setdefault(b.replies[0][1].get("code", "?"), []).append((b.replies[0][0] - b.sent) * 1000)
    return {
        "one_reply_each": all(len(b.replies) == 1 for b in buyers),
        "answered": sum(1 for b in buyers if b.replies),
        "codes": codes,
        "ack_by_code": {code: ack_summary(ms) for code, ms in by_code.items()},
        "ack_p50_ms": round(statistics.median(acks), 1) if acks else float("nan"),
        "ack_p99_ms": round(percentile(acks, 99), 1),
        "ack_max_ms": round(max(acks), 1) if acks else float("nan"),
        "attempts_per_s": round(len(buyers) / max(1e-6, t_last - t_first)),
        "send_all_ms": round((t_sent - t_first) * 1000, 1),  # the load generator's own time to send every buy
        "unsent": unsent,
    }


def ack_summary(ms: list[float]) -> dict:
    return {"p50_ms": round(statistics.median(ms), 1), "p99_ms": round(percentile(ms, 99), 1)}


# --- the baseline: the bare gate ---------------------------------------------------------


async def baseline(url: str, *, attempts: int, stock: int, connections: int) -> dict:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        await admin.execute("DROP TABLE IF EXISTS bench_gate")
        await admin.execute(
            "CREATE TABLE bench_gate (id int PRIMARY KEY, available int NOT NULL CHECK (available >= 0))"
        )
        await admin.execute("INSERT INTO bench_gate VALUES (1, %s)", [stock])
    conns = [await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in range(connections)]
    queue: asyncio.Queue = asyncio.Queue()
    for _ in range(attempts):
        queue.put_nowait(1)
    sold = 0

    async def worker(conn):
        nonlocal sold
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            cur = await conn.execute(
                "UPDATE bench_gate SET available = available - 1 WHERE id = 1 AND available >= 1 RETURNING available"
            )
            if await cur.fetchone() is not None:
                sold += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - start
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        left = (await (await admin.execute("SELECT available FROM bench_gate WHERE id = 1")).fetchone())[0]
        await admin.execute("DROP TABLE bench_gate")
    for c in conns:
        await c.close()
    return {"attempts_per_s": round(attempts / elapsed), "sold": sold, "left": left}


def baseline_redis(redis_url: str, *, attempts: int, stock: int) -> dict:
    """The Redis admission gate bare: the design's own script (`orders.gate.TAKE_LUA`), N
    attempts for S units from one Python process on one connection, no Django around it."""
    import redis

    from orders.gate import INFLIGHT_TTL_MS, TAKE_LUA

    client = redis.Redis.from_url(redis_url)
    key = f"benchgate:{os.getpid()}"
    keys = [key, key + ":inflight"]
    client.set(key, stock)
    take = client.register_script(TAKE_LUA)
    take(keys=keys, args=[INFLIGHT_TTL_MS, 0])  # load the script (EVALSHA from here on), take nothing
    sold = 0
    start = time.perf_counter()
    for _ in range(attempts):
        status, _left = take(keys=keys, args=[INFLIGHT_TTL_MS, 1])
        sold += status == 1
    elapsed = time.perf_counter() - start
    left = int(client.get(key))
    client.delete(*keys)
    client.close()
    return {"attempts_per_s": round(attempts / elapsed), "sold": sold, "left": left}


# --- main --------------------------------------------------------------------------------


async def run(args) -> list[dict]:
    base_url = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/livemart"
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    stocks = [int(s) for s in args.stock.split(",")]
    url = prepare_database(base_url, DB_NAME)
    prefix = f"benchflash{os.getpid()}"
    os.environ.update({"DATABASE_URL": url, "REDIS_URL": redis_url, "REDIS_PREFIX": prefix,
                       "DJANGO_SETTINGS_MODULE": "config.settings", "QUIET_EMBEDDED": "1"})  # fmt: skip
    # The baseline first, while nothing else holds connections (PostgreSQL allows 100).
    if args.baseline_connections is None:  # what the design runs the gate from: each web process's async pool
        args.baseline_connections = args.workers * args.pool
    pg_baselines = {stock: await baseline(url, attempts=args.buyers, stock=stock,
                                          connections=args.baseline_connections) for stock in stocks}  # fmt: skip
    baselines = {stock: await asyncio.to_thread(baseline_redis, redis_url, attempts=args.buyers, stock=stock)
                 for stock in stocks}  # fmt: skip
    setup = await asyncio.to_thread(make_room_and_buyers, args.buyers, stocks)
    port = free_port()
    env = {**os.environ, "DB_CONN_MAX_AGE": "300", "PAYMENT_SANDBOX_CONFIRM_SECONDS": "0", "LOG_LEVEL": "WARNING",
           "ORDERS_FASTPATH_POOL_SIZE": str(args.pool)}  # fmt: skip
    web = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(args.workers), "--ws-per-message-deflate", "false", "--log-level", "warning",
         "--backlog", "4096"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(ROOT / "var" / "bench-flashsale-web.log", "w"),  # noqa: SIM115
    )  # fmt: skip
    results = []
    buyers = [Buyer(cookie, address) for cookie, address in setup["buyers"]]
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/healthz", web, 60)
        took = await connect_all(
            f"ws://127.0.0.1:{port}/ws/rooms/{setup['room']}/", f"http://127.0.0.1:{port}", buyers
        )
        print(f"connected {len(buyers)} buyers in {took:.1f} s ({args.workers} web processes)", flush=True)
        for stock, item_id in zip(stocks, setup["items"], strict=True):
            sale_id, starts_at = await asyncio.to_thread(
                start_sale, host_id=setup["host"], item_id=item_id, stock=stock, lead=args.lead
            )
            room = await flash_round(buyers, sale_id=sale_id, item_id=item_id, starts_at=starts_at,
                                     stock=stock, settle_s=args.settle)  # fmt: skip
            book = await asyncio.to_thread(books, sale_id, stock)
            base, pg_base = baselines[stock], pg_baselines[stock]
            result = {
                "buyers": args.buyers, "stock": stock, "sold": book["taken"],
                "oversold": max(0, book["taken"] - stock) + (0 if book["available"] >= 0 else 1),
                "one_reply_each": room["one_reply_each"], "answered": room["answered"],
                "ack_p50_ms": room["ack_p50_ms"], "ack_p99_ms": room["ack_p99_ms"], "ack_max_ms": room["ack_max_ms"],
                "attempts_per_s": room["attempts_per_s"], "baseline_attempts_per_s": base["attempts_per_s"],
                "send_all_ms": room["send_all_ms"], "unsent": room["unsent"],
                "ratio": round(room["attempts_per_s"] / base["attempts_per_s"], 2),
                "pg_gate_attempts_per_s": pg_base["attempts_per_s"],
                "pg_ratio": round(room["attempts_per_s"] / pg_base["attempts_per_s"], 2),
                "conserved": book["conserved"] and book["line_units"] == book["taken"],
                "codes": room["codes"], "ack_by_code": room["ack_by_code"],
                "baseline_sold": base["sold"], "pg_gate_sold": pg_base["sold"],
                "web_processes": args.workers,
                "baseline_connections": args.baseline_connections, "fast_pool": args.pool,
            }  # fmt: skip
            results.append(result)
    finally:
        if sys.exc_info()[0] is not None:
            import traceback

            traceback.print_exc()  # now, not after the sockets below have closed
        await asyncio.gather(*(b.ws.close() for b in buyers if b.ws is not None))
        web.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            web.wait(15)
        if web.poll() is None:
            web.kill()
        if not args.keep:
            await asyncio.to_thread(drop_database, base_url)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buyers", type=int, default=2000)
    parser.add_argument("--stock", default="100,1000", help="comma-separated sale sizes, one round each")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn web processes")
    parser.add_argument("--lead", type=float, default=4.0, help="seconds between announcing and starting the sale")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to wait for stray second replies")
    parser.add_argument("--pool", type=int, default=4, help="async gate connections per web process")
    parser.add_argument("--baseline-connections", type=int, default=None,
                        help="default: workers x pool, the connections the web tier runs the gate from")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    use_local_stack_env()  # production settings with the sandboxes allowed (docs/operations.md)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    (ROOT / "var").mkdir(exist_ok=True)
    results = asyncio.run(run(args))

    cols = ["stock", "sold", "oversold", "one_reply_each", "ack_p50_ms", "ack_p99_ms", "attempts_per_s",
            "baseline_attempts_per_s", "ratio", "pg_gate_attempts_per_s", "pg_ratio"]  # fmt: skip
    print()
    print(f"flash sale: {args.buyers} websocket buyers, one live room, limit 1 each")
    print(" | ".join(f"{c:>14}" for c in cols))
    for r in results:
        print(" | ".join(f"{r[c]!s:>14}" for c in cols))
    for r in results:
        print("codes", r["stock"], r["codes"])
    ok = all(r["oversold"] == 0 and r["one_reply_each"] and r["conserved"] for r in results)
    for r in results:
        print(json.dumps(r, separators=(",", ":")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
