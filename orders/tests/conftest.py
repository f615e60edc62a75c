import threading
import time

import pytest


@pytest.fixture(autouse=True)
def _sandbox_callbacks_off(settings):
    """Tests send the sandbox bank's callbacks themselves."""
    settings.PAYMENT_SANDBOX_CONFIRM_SECONDS = 0
    settings.ORDERS_STOCK_COALESCE_SECONDS = 0.05


@pytest.fixture(autouse=True)
def _clean_room_keys():
    """Room ids restart with each test database: drop last run's rate windows."""
    from django.conf import settings as dj

    if dj.REDIS_URL:
        from streams.fanout import sync_redis

        client = sync_redis()
        for pattern in (f"{dj.REDIS_PREFIX}:room:*", f"{dj.REDIS_PREFIX}:rate:*", f"{dj.REDIS_PREFIX}:gate:*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    yield


@pytest.fixture(autouse=True)
def _room_events_sent(django_db_blocker):
    """A buy's stock and sold-out events go out from timer and executor threads a moment
    later; let them finish before the test's tables are flushed (a flush racing the stock
    read of one of them deadlocked)."""
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # a timer may arm the next one
        timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer) and t.is_alive()]
        if not timers:
            break
        for timer in timers:
            timer.join(max(0.0, deadline - time.monotonic()))
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock():
        while time.monotonic() < deadline:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                               " AND pid <> pg_backend_pid() AND state NOT IN ('idle')")  # fmt: skip
                if not cursor.fetchone()[0]:
                    break
            time.sleep(0.02)
