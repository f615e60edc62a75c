"""Celery beat for the embedded default.

With no Redis there is no broker, no worker and no `celery beat` process; tasks run
in-process. The periodic jobs still have to happen (reservations expire, the outbox
sweep, the sandbox retailer's schedule, catalog sync), so the web process runs every
interval entry of CELERY_BEAT_SCHEDULE itself, one at a time, on one daemon thread.
Started from config/asgi.py only when settings.EMBEDDED; the full stack uses real beat.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)

_started = False
_lock = threading.Lock()


def interval_seconds(schedule) -> float | None:
    """Seconds between runs, or None for schedules beat alone understands (crontab)."""
    if isinstance(schedule, int | float):
        return float(schedule)
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    return None


def start() -> bool:
    """Start the thread once per process; False if it was already running."""
    global _started
    with _lock:
        if _started:
            return False
        _started = True
    threading.Thread(target=_run, name="embedded-beat", daemon=True).start()
    return True


def run_due(entries: list[list], now: float) -> list[str]:
    """Run every entry whose time has come; return their names. Each entry is
    [due, every, name, task_name] and gets its next due time."""
    from config.celery import app

    ran = []
    for entry in sorted(entries):
        due, every, name, task_name = entry
        if due > now:
            break
        try:
            result = app.tasks[task_name].apply()  # in this thread, as a worker would
            if result.failed():
                log.error("embedded beat: %s failed: %r", name, result.result)
        except Exception:
            log.exception("embedded beat: %s failed", name)
        finally:
            close_old_connections()
        entry[0] = time.monotonic() + every
        ran.append(name)
    return ran


def schedule_entries(now: float) -> list[list]:
    entries = []
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        every = interval_seconds(entry["schedule"])
        if every:
            entries.append([now + every, every, name, entry["task"]])
        else:
            log.warning("embedded beat: %s has no fixed interval and will not run", name)
    return entries


def _run() -> None:
    from config.celery import app

    app.loader.import_default_modules()  # the apps' tasks modules
    entries = schedule_entries(time.monotonic())
    log.info("embedded beat: running %s", ", ".join(e[2] for e in entries))
    while entries:
        time.sleep(max(0.05, min(e[0] for e in entries) - time.monotonic()))
        run_due(entries, time.monotonic())
