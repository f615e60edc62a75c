"""The small test override: real PostgreSQL and Redis, fast hashing, eager tasks."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/livemart")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("REDIS_PREFIX", f"livetest{os.environ.get('PYTEST_XDIST_WORKER', '')}")

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tasks run inline unless a test starts real Celery workers on purpose.
CELERY_TASK_ALWAYS_EAGER = True
MEDIA_ROOT = BASE_DIR / "var" / "test-media"  # noqa: F405
SECURE_COOKIES = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
# Paid orders are handed to the retailer only where a test asks for it (fulfilment/tests).
FULFILMENT_DISPATCH_ON_COMMIT = False
# The test settings are not production (config/checks.py), whatever DEBUG says.
PRODUCTION = False
SANDBOX_RETAILER_API = True
