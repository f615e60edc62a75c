"""Room fan-out benchmark: pin-to-screen latency through the real websocket endpoint.

Starts the production-style stack (PostgreSQL, Redis, ONE uvicorn web process serving
config.asgi), makes a live room with a shelf in a fresh bench database, connects N
anonymous viewers to /ws/rooms/<id>/ and has the host pin over its own socket at a fixed
rate; every viewer timestamps each pin frame it receives, and latency is receive time
minus the moment the bench sent the pin (both clocks in this process).

In the same run it measures a baseline: a bare `websockets` server (a child process)
fed by ONE Redis subscription, the same N sockets and the same payload size, with the
bench PUBLISHing the frames to Redis at the same rate.

Then it finds each side's ceiling: deliveries per second sustained with p99 under 1 s
and every frame delivered, stepping the pin rate up.

    python bench/fanout.py [--viewers 2000] [--rate 2] [--seconds 10]

Needs DATABASE_URL (any database on the server; the bench creates its own) and
REDIS_URL. Prints a table and a final JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import free_port, percentile, prepare_database, use_local_stack_env, wait_http  # noqa: E402

PAYLOAD_PAD = None  # set from the real pin frame size


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# --- the bench database and room ---------------------------------------------------------


def make_room() -> dict:
    import django

    django.setup()
    from datetime import timedelta
    from decimal import Decimal

    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils import timezone

    from accounts.models import HostProfile, User
    from catalog.models import Product, ProductImage, Retailer
    from streams import services

    user = User.objects.create_user(username="benchhost", password="bench-pass-123")
    host = HostProfile.objects.create(user=user, handle="benchhost", status=HostProfile.Status.APPROVED)
    retailer = Retailer.objects.create(code="jdm", name="JD Mall Self-Operated")
    room = services.room_create(host=host, title="Bench room", scheduled_start=timezone.now() + timedelta(hours=1))
    items = []
    for i in range(2):
        product = Product.objects.create(
            retailer=retailer, sku=f"B{i}", title=f"Noise-cancelling headphones model {i}", brand="Acme",
            list_price=Decimal("599.00"), self_operated=True, in_feed=True, sellable=True, retailer_stock=500,
        )  # fmt: skip
        ProductImage.objects.create(product=product, url=f"https://img.example.com/p/{i}.jpg")
        items.append(services.shelf_add(room=room, product_id=product.pk, live_price="499.00", by=user).pk)
    services.room_go_live(room=room)
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    return {"room_id": room.pk, "items": items, "cookie": f"{settings.SESSION_COOKIE_NAME}={session.session_key}"}


# --- the baseline server (run as a child: python bench/fanout.py --baseline-server PORT) --


async def baseline_server(port: int, redis_url: str, channel: str) -> None:
    import redis.asyncio as aredis
    from websockets.asyncio.server import broadcast, serve

    clients = set()

    async def handler(ws):
        clients.add(ws)
        try:
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    client = aredis.Redis.from_url(redis_url, socket_timeout=None)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    async with serve(handler, "127.0.0.1", port, max_size=4096, ping_interval=None, backlog=4096, compression=None):
        print("ready", flush=True)
        async for message in pubsub.listen():
            if message["type"] == "message":
                broadcast(clients, message["data"].decode())


# --- the load generator ------------------------------------------------------------------


class Viewers:
    def __init__(self):
        self.sockets = []
        self.received: dict[int, list[float]] = {}
        self.tasks = []

    async def connect(self, url: str, n: int, origin: str | None) -> float:
        from websockets.asyncio.client import connect

        sem = asyncio.Semaphore(100)

        async def one(i):
            async with sem:
                for attempt in range(5):
                    try:
                        ws = await connect(url, origin=origin, max_size=2**20, ping_interval=None, open_timeout=30,
                                           compression=None)  # fmt: skip
                        break
                    except (OSError, TimeoutError, Exception):
                        if attempt == 4:
                            raise
                        await asyncio.sleep(0.2 * (attempt + 1))
                self.sockets.append(ws)
                self.tasks.append(asyncio.create_task(self.read(ws)))

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - start

    async def read(self, ws) -> None:
        received = self.received
        now = time.perf_counter
        marker = '"type":"pin"'
        with contextlib.suppress(Exception):
            async for frame in ws:
                if marker in frame:
                    at = now()
                    seq = int(frame[frame.index('"pin_id":') + 9 :].split(",", 1)[0].split("}", 1)[0])
                    received.setdefault(seq, []).append(at)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)
        self.sockets.clear()


async def run_pins(send_pin, rate: float, seconds: float) -> dict[int, float]:
    """Start send_pin(seq) at `rate` per second without waiting for earlier pins (open loop).

    Returns {pin_id: due time}. Latency counts from when a pin was DUE, so a server that
    falls behind the schedule shows up as latency (no coordinated omission).
    """
    count = max(1, int(rate * seconds))
    start = time.perf_counter()
    tasks = []
    for i in range(count):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append((target, asyncio.create_task(send_pin(i))))
    sent: dict[int, float] = {}
    for target, task in tasks:
        with contextlib.suppress(asyncio.TimeoutError):
            pin_id = await asyncio.wait_for(task, 30)
            if pin_id is not None:
                sent[pin_id] = target
    run_pins.elapsed = max(seconds, time.perf_counter() - start)
    return sent


def summarise(viewers: Viewers, sent: dict[int, float], n: int, seconds: float) -> dict:
    latencies = []
    delivered = 0
    for pin_id, t0 in sent.items():
        times = viewers.received.get(pin_id, [])
        delivered += len(times)
        latencies.extend((t - t0) * 1000 for t in times)
    expected = n * len(sent)
    return {
        "pins": len(sent),
        "delivered": delivered,
        "delivered_ratio": round(delivered / expected, 5) if expected else 0.0,
        "p50_ms": round(statistics.median(latencies), 1) if latencies else float("nan"),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1) if latencies else float("nan"),
        "per_s": round(delivered / seconds),
    }


async def settle(viewers: Viewers, sent: dict[int, float], n: int, wait: float = 4.0) -> None:
    deadline = time.perf_counter() + wait
    while time.perf_counter() < deadline:
        if all(len(viewers.received.get(p, ())) >= n for p in sent):
            return
        await asyncio.sleep(0.1)


class RoomSide:
    """Our stack: pins go through host sockets, the pin service and the hub.

    Several host sockets share the pins, because one socket sending more than 20 frames a
    second is a flood by the protocol's own rule (docs/protocol.md) and is closed.
    """

    name = "channels+hub"
    HOST_SOCKETS = 8

    def __init__(self, ws_url: str, origin: str, room: dict):
        self.ws_url, self.origin, self.room = ws_url, origin, room
        self.hosts = []
        self.readers = []
        self.waiting: dict[str, asyncio.Future] = {}

    async def start_host(self) -> None:
        from websockets.asyncio.client import connect

        for _ in range(self.HOST_SOCKETS):
            ws = await connect(self.ws_url, origin=self.origin, additional_headers={"Cookie": self.room["cookie"]},
                               max_size=2**22, compression=None)  # fmt: skip
            first = json.loads(await ws.recv())
            assert first["type"] == "snapshot" and first["me"]["role"] == "host", first
            self.hosts.append(ws)
            self.readers.append(asyncio.create_task(self._read_host(ws)))

    async def _read_host(self, ws) -> None:
        with contextlib.suppress(Exception):
            async for frame in ws:
                if '"ref"' not in frame:
                    continue
                event = json.loads(frame)
                future = self.waiting.pop(str(event.get("ref")), None)
                if future is not None and not future.done():
                    future.set_result(event)

    async def send_pin(self, seq: int):
        item = self.room["items"][seq % 2]
        ref = f"p{seq}-{time.perf_counter_ns()}"
        future = asyncio.get_running_loop().create_future()
        self.waiting[ref] = future
        await self.hosts[seq % len(self.hosts)].send(json.dumps({"type": "pin", "item_id": item, "ref": ref}))
        ack = await future
        if ack["type"] != "ack":
            print("pin refused:", ack, file=sys.stderr)
            return None
        return ack["pin_id"]

    async def close(self) -> None:
        for ws in self.hosts:
            await ws.close()


class BaselineSide:
    name = "bare websockets"

    def __init__(self, redis_url: str, channel: str, frame_template: str):
        import redis.asyncio as aredis

        self.client = aredis.Redis.from_url(redis_url)
        self.channel = channel
        self.template = frame_template
        self.seq = 10**6

    async def start_host(self) -> None:
        pass

    async def send_pin(self, seq: int):
        self.seq += 1
        pin_id = self.seq
        await self.client.publish(self.channel, self.template.replace('"pin_id":0', f'"pin_id":{pin_id}'))
        return pin_id


async def measure(side, viewers: Viewers, n: int, rate: float, seconds: float) -> dict:
    sent = await run_pins(side.send_pin, rate, seconds)
    await settle(viewers, sent, n)
    return summarise(viewers, sent, n, run_pins.elapsed)


async def main_async(args) -> dict:
    import redis

    redis_url = os.environ["REDIS_URL"]
    prefix = f"benchfanout{os.getpid()}"
    db_url = prepare_database(os.environ["DATABASE_URL"], "bench_fanout")
    os.environ.update({"DATABASE_URL": db_url, "REDIS_PREFIX": prefix, "DJANGO_SETTINGS_MODULE": "config.settings"})
    room = await asyncio.to_thread(make_room)

    port = free_port()
    env = {**os.environ, "DB_CONN_MAX_AGE": "60", "LOG_LEVEL": "WARNING", "DEBUG": "0", "SECURE_COOKIES": "0",
           "ALLOWED_HOSTS": "127.0.0.1,localhost"}  # fmt: skip
    log = open(ROOT / "var" / "bench-fanout-web.log", "w")  # noqa: SIM115
    web = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--backlog", "4096", "--ws-max-size", "4096", "--no-access-log",
         "--ws-per-message-deflate", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base_port = free_port()
    base_channel = f"{prefix}:baseline"
    base = subprocess.Popen(
        [sys.executable, __file__, "--baseline-server", str(base_port), "--channel", base_channel],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", web)
        assert base.stdout.readline().strip() == "ready"
        n, rate, seconds = args.viewers, args.rate, args.seconds
        rates = [float(r) for r in args.rates.split(",")]

        # Both sides run in the same pass, alternating step by step, so the load other
        # programs put on the machine falls on both alike.
        ours = RoomSide(f"ws://127.0.0.1:{port}/ws/rooms/{room['room_id']}/", f"http://127.0.0.1:{port}", room)
        await ours.start_host()
        sample = await fetch_pin_frame(ours)
        template = sample.replace(f'"pin_id":{json.loads(sample)["pin_id"]}', '"pin_id":0')
        baseline = BaselineSide(redis_url, base_channel, template)

        print(f"== connecting {n} viewers to each side", flush=True)
        ours_viewers, base_viewers = Viewers(), Viewers()
        connect_s = await ours_viewers.connect(ours.ws_url, n, ours.origin)
        base_connect_s = await base_viewers.connect(f"ws://127.0.0.1:{base_port}/", n, None)
        print(f"  channels+hub {connect_s:.2f} s, baseline {base_connect_s:.2f} s", flush=True)
        await asyncio.sleep(3)
        rss = rss_mb(web.pid)

        # Warm-up (not counted): first pins after thousands of connects pay one-off costs
        # (lazy imports, caches, the garbage collector catching up) on both sides.
        await measure(ours, ours_viewers, n, rate, 3)
        await measure(baseline, base_viewers, n, rate, 3)
        await asyncio.sleep(1.5)

        print(f"== main run: {rate} pins/s for {seconds} s", flush=True)
        main = await measure(ours, ours_viewers, n, rate, seconds)
        print(f"  channels+hub    {main}", flush=True)
        await asyncio.sleep(1.5)
        base_main = await measure(baseline, base_viewers, n, rate, seconds)
        print(f"  bare websockets {base_main}", flush=True)

        print("== ceiling: deliveries/s with p99 < 1 s and every frame delivered", flush=True)
        ceiling_ours = ceiling_base = 0
        ours_done = base_done = False
        for step in rates:
            for side, viewers, done in ((ours, ours_viewers, ours_done), (baseline, base_viewers, base_done)):
                if done:
                    continue
                await asyncio.sleep(1.5)
                result = await measure(side, viewers, n, step, args.step_seconds)
                ok = result["p99_ms"] < 1000 and result["delivered_ratio"] >= 1.0
                print(f"  {side.name:16} rate {step:5.1f} pins/s -> {result['per_s']:7d} deliveries/s "
                      f"p99 {result['p99_ms']:8.1f} ms delivered {result['delivered_ratio']:.4f}"
                      f"{'' if ok else '  (over)'}", flush=True)  # fmt: skip
                if side is ours:
                    ceiling_ours = max(ceiling_ours, result["per_s"]) if ok else ceiling_ours
                    ours_done = not ok
                else:
                    ceiling_base = max(ceiling_base, result["per_s"]) if ok else ceiling_base
                    base_done = not ok
            if ours_done and base_done:
                break
        rss = max(rss, rss_mb(web.pid))
        await ours_viewers.close()
        await base_viewers.close()
        await ours.close()
    finally:
        for proc in (web, base):
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        log.close()
        with contextlib.suppress(Exception):
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=f"{prefix}:*"))
            if keys:
                client.delete(*keys)

    result = {
        "viewers": n,
        "rate_pins_per_s": rate,
        "payload_bytes": len(sample.encode()),
        "p50_ms": main["p50_ms"],
        "p99_ms": main["p99_ms"],
        "delivered_ratio": main["delivered_ratio"],
        "baseline_p50_ms": base_main["p50_ms"],
        "baseline_p99_ms": base_main["p99_ms"],
        "baseline_delivered_ratio": base_main["delivered_ratio"],
        "ceiling_per_s": ceiling_ours,
        "baseline_ceiling_per_s": ceiling_base,
        "connect_s": round(connect_s, 2),
        "baseline_connect_s": round(base_connect_s, 2),
        "rss_mb": round(rss, 1),
    }
    print()
    print(f"{'':28}{'channels+hub':>14}{'baseline':>14}{'ratio':>10}")
    for label, a, b, better_low in [
        ("p50 latency (ms)", main["p50_ms"], base_main["p50_ms"], True),
        ("p99 latency (ms)", main["p99_ms"], base_main["p99_ms"], True),
        ("delivered ratio", main["delivered_ratio"], base_main["delivered_ratio"], False),
        ("ceiling (deliveries/s)", ceiling_ours, ceiling_base, False),
        ("connect all viewers (s)", round(connect_s, 2), round(base_connect_s, 2), True),
    ]:
        ratio = (a / b) if b else float("nan")
        print(f"{label:28}{a:>14}{b:>14}{ratio:>10.2f}")
    print(f"{'web process RSS (MB)':28}{round(rss, 1):>14}")
    verdict = {
        "all_delivered": main["delivered_ratio"] >= 1.0,
        "p99_within_2x_baseline": main["p99_ms"] <= 2 * base_main["p99_ms"],
        "ceiling_at_least_30pct": ceiling_ours >= 0.3 * ceiling_base,
        "connect_within_2x_baseline": connect_s <= 2 * base_connect_s,
    }
    print("targets:", verdict)
    result["targets_met"] = all(verdict.values())
    return result


async def fetch_pin_frame(side: RoomSide) -> str:
    """One real pin frame as a viewer receives it (for the baseline's payload size)."""
    from websockets.asyncio.client import connect

    async with connect(side.ws_url, origin=side.origin) as ws:
        await ws.recv()  # snapshot
        await side.send_pin(0)
        while True:
            frame = await asyncio.wait_for(ws.recv(), 5)
            if '"type":"pin"' in frame:
                return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=2.0, help="pins per second in the main run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the main run")
    parser.add_argument("--rates", default="4,8,12,16,24,32,48,64,96,128", help="pin rates stepped for the ceiling")
    parser.add_argument("--step-seconds", type=float, default=4.0)
    parser.add_argument("--baseline-server", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--channel", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    use_local_stack_env()  # production settings with the sandboxes allowed (docs/operations.md)
    raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.baseline_server:
        asyncio.run(baseline_server(args.baseline_server, os.environ["REDIS_URL"], args.channel))
        return
    (ROOT / "var").mkdir(exist_ok=True)
    # A terminated bench still stops its web and baseline servers (the finally blocks run).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = asyncio.run(main_async(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
