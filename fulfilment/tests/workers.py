"""Real Celery worker processes (and a private Redis) for the fault tests and the bench."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """`celery -A config worker` in its own process group, on the given database and Redis."""

    def __init__(self, *, database_url: str, redis_url: str, prefix: str, concurrency: int = 4, extra_env=None):
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REDIS_PREFIX": prefix,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "QUIET_EMBEDDED": "1",
            "FULFILMENT_LEASE_SECONDS": "4",
            "FULFILMENT_BACKOFF_SECONDS": "0.5",
            "FULFILMENT_REQUEUE_SECONDS": "3",
            "RETAILER_RETRIES": "0",
            "LOG_LEVEL": "WARNING",
        }
        env.update(extra_env or {})
        (ROOT / "var").mkdir(exist_ok=True)
        self.log = open(ROOT / "var" / f"celery-worker-{os.getpid()}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "prefork", "-c", str(concurrency),
             "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "warning"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole worker (main process and pool children) at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()
                return
        self.log.close()


class PrivateRedis:
    """A redis-server of our own on a free port, which a test may stop and start again."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis.from_url(self.url, socket_timeout=0.5).ping():
                    return
            time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def purge_queue(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:celery:*", count=1000))
    if keys:
        client.delete(*keys)


@contextlib.contextmanager
def real_broker(url: str):
    """Make this process publish tasks to Redis at `url` (tests run tasks eagerly otherwise)."""
    from config.celery import app

    saved = (app.conf.task_always_eager, app.conf.broker_url)

    def reset():  # kombu keeps one pool per broker URL; drop only our cached references
        app._pool = None
        with contextlib.suppress(AttributeError):
            app.amqp._producer_pool = None

    app.conf.task_always_eager = False
    app.conf.broker_url = url
    reset()
    try:
        yield app
    finally:
        app.conf.task_always_eager, app.conf.broker_url = saved
        reset()
