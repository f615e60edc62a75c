"""The one settings module in both modes, read in a fresh interpreter each time."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json
from django.conf import settings
import django
django.setup()
layer = settings.CHANNEL_LAYERS["default"]
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "layer": layer["BACKEND"],
    "layer_hosts": layer.get("CONFIG", {}).get("hosts"),
    "eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "broker": settings.CELERY_BROKER_URL,
    "acks_late": settings.CELERY_TASK_ACKS_LATE,
    "reject_on_worker_lost": settings.CELERY_TASK_REJECT_ON_WORKER_LOST,
    "prefetch": settings.CELERY_WORKER_PREFETCH_MULTIPLIER,
    "visibility_timeout": settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"],
    "max_retry_delay": settings.CELERY_MAX_RETRY_DELAY,
    "serializers": [settings.CELERY_TASK_SERIALIZER, settings.CELERY_ACCEPT_CONTENT],
    "cache": settings.CACHES["default"]["BACKEND"],
    "debug": settings.DEBUG,
    "allowed_hosts": settings.ALLOWED_HOSTS,
}))
"""


def read_settings(**env_overrides):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "QUIET_EMBEDDED"}}
    env.update(env_overrides)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_embedded_default_uses_sqlite_memory_layer_and_eager_tasks_and_says_so(tmp_path):
    values, stderr = read_settings(SQLITE_PATH=str(tmp_path / "x.sqlite3"))

    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["layer"] == "channels.layers.InMemoryChannelLayer"
    assert values["eager"] is True
    assert values["cache"].endswith("LocMemCache")
    assert "EMBEDDED DEFAULT" in stderr


def test_full_stack_uses_postgres_redis_layer_and_reliable_celery():
    values, stderr = read_settings(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/livemart",
        REDIS_URL="redis://127.0.0.1:6379/0",
        ALLOWED_HOSTS="shop.example.com,www.shop.example.com",
    )

    assert values["engine"] == "django.db.backends.postgresql"
    assert values["db_name"] == "livemart"
    assert values["layer"] == "channels_redis.core.RedisChannelLayer"
    # The redis-py 8 trap: no socket timeout under the layer's blocking read, a large pool.
    assert values["layer_hosts"] == [
        {"address": "redis://127.0.0.1:6379/0", "socket_timeout": None, "max_connections": 10000}
    ]
    assert values["eager"] is False
    assert values["broker"] == "redis://127.0.0.1:6379/0"
    assert values["acks_late"] is True
    assert values["reject_on_worker_lost"] is True
    assert values["prefetch"] == 1
    assert values["visibility_timeout"] > values["max_retry_delay"]
    assert values["serializers"] == ["json", ["json"]]
    assert values["cache"].endswith("RedisCache")
    assert values["allowed_hosts"] == ["shop.example.com", "www.shop.example.com"]
    assert "EMBEDDED DEFAULT" not in stderr


def test_debug_is_off_unless_asked_for():
    assert read_settings()[0]["debug"] is False
    assert read_settings(DEBUG="1")[0]["debug"] is True
