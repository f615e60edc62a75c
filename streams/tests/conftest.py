import pytest
from django.conf import settings


@pytest.fixture(autouse=True)
def clean_room_keys():
    """Room counters and rate-limit keys are per room id; ids restart with each test database."""
    if settings.REDIS_URL:
        from streams.fanout import sync_redis

        client = sync_redis()
        for pattern in (
            f"{settings.REDIS_PREFIX}:room:*",
            f"{settings.REDIS_PREFIX}:rate:*",
            f"{settings.REDIS_PREFIX}:hold:*",
        ):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    yield
