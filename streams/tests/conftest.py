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


@pytest.fixture
def redis_stack(transactional_db):
    """A web process (uvicorn) on a private redis-server the test may stop and start:
    (AsgiServer, PrivateRedis). Never the shared Redis: others' tests run on it."""
    from conftest import AsgiServer, free_port
    from fulfilment.tests.workers import PrivateRedis

    private = PrivateRedis(free_port())
    try:
        server = AsgiServer(extra_env={"REDIS_URL": private.url, "REDIS_PREFIX": "redisdown"})
    except Exception:
        private.stop()
        raise
    yield server, private
    server.stop()
    private.stop()
