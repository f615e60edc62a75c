"""The embedded default end to end, as `make run` serves it: SQLite, the in-memory
channel layer, in-process tasks and beat, one uvicorn process. A viewer logs in, opens the
demo's live room over the websocket, buys the pinned product with a test card, and finds
the order on /orders/."""

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import websockets

from conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def embedded_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SQLITE_PATH=str(tmp_path / "db.sqlite3"),
        MEDIA_ROOT=str(tmp_path / "media"),
        QUIET_EMBEDDED="1",
    )
    return env


def manage(env, *args):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def start_server(env, port: int, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"embedded server did not start: {log_path.read_text()[-2000:]}")


def log_in(base: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, follow_redirects=True, timeout=10)
    client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
        headers={"Referer": base + "/accounts/login/"},
    )
    assert response.status_code == 200 and "Log out" in response.text
    return client


async def buy_pinned(base: str, room_id: int, cookies: str) -> list[dict]:
    url = base.replace("http", "ws") + f"/ws/rooms/{room_id}/"
    frames = []
    async with websockets.connect(url, origin=base, additional_headers={"Cookie": cookies}) as ws:

        async def next_of(*types):
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
                frames.append(frame)
                if frame["type"] in types:
                    return frame

        snapshot = await next_of("snapshot")
        item = snapshot["pinned"]
        await ws.send(json.dumps({"type": "buy.quote", "ref": "q", "item": item["id"], "quantity": 1}))
        quote = await next_of("buy.quote")
        address = quote["addresses"][0]["id"]
        await ws.send(
            json.dumps(
                {"type": "buy", "ref": "b", "item": item["id"], "quantity": 1, "address": address,
                 "card": "4242 4242 4242 4242", "key": "smoke-" + uuid.uuid4().hex[:12],
                 "price": "0.01", "total": "0.01"}  # claims the server must ignore
            )
        )  # fmt: skip
        await next_of("buy.result")
        await next_of("order.update")
    return frames


def test_make_run_mode_sells_the_pinned_product_end_to_end(tmp_path):
    env = embedded_env(tmp_path)
    manage(env, "migrate", "--noinput", "-v0")
    seeded = manage(env, "seed_demo").stdout
    assert "viewer" in seeded and "watch-and-buy" in seeded
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(env, port, tmp_path / "server.log")
    try:
        home = httpx.get(base + "/").text
        room_id = int(re.search(r'href="/rooms/(\d+)/"', home).group(1))
        viewer = log_in(base, "viewer", "watch-and-buy")
        cookies = "; ".join(f"{k}={v}" for k, v in viewer.cookies.items())

        frames = asyncio.run(buy_pinned(base, room_id, cookies))

        by_type = {f["type"]: f for f in frames}
        pinned = by_type["snapshot"]["pinned"]
        assert by_type["buy.quote"]["unit_price"] == pinned["live_price"]
        assert by_type["buy.result"]["ok"] is True
        update = by_type["order.update"]
        assert update["ok"] is True and update["code"] == "paid"
        order = update["order"]
        assert order["total"] == pinned["live_price"]  # the shelf's price, not the client's 0.01
        orders_page = viewer.get("/orders/").text
        assert order["number"] in orders_page
        assert viewer.get(order["url"]).status_code == 200
    finally:
        server.terminate()
        server.wait(10)
