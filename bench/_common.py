"""Helpers the benchmarks share: a fresh bench database, a free port, percentiles.

Not a benchmark itself (`make bench` runs only files not starting with `_`)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent


def use_local_stack_env() -> None:
    """Put the full stack's opt-ins and secrets (bin/local-stack-env) into os.environ, so
    the bench's uvicorn children, run with production settings, agree to start."""
    import json

    out = subprocess.run([sys.executable, str(ROOT / "bin" / "local-stack-env"), "--json"], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    os.environ.update(json.loads(out))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_database(base_url: str, name: str) -> str:
    """Drop and create database `name` on the server of `base_url`, migrate it, return its URL."""
    import psycopg

    parsed = urlparse(base_url)
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = parsed._replace(path=f"/{name}").geturl()
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0", "--skip-checks"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": url, "QUIET_EMBEDDED": "1"}, check=True,
    )  # fmt: skip
    return url


def wait_http(url: str, proc: subprocess.Popen, seconds: float = 30) -> None:
    """Wait until `url` answers below 500, or fail if `proc` (its server) exits first."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")
