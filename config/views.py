from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not answering"
        return f"{type(exc).__name__}: {exc}"
    return None


def _check_redis() -> str | None:
    if not settings.REDIS_URL:
        return None
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@never_cache
@require_GET
def healthz(request):
    """200 when the database and (when configured) Redis answer; 503 otherwise."""
    checks = {"database": _check_database(), "redis": _check_redis() if settings.REDIS_URL else "not configured"}
    failed = {name: err for name, err in checks.items() if err and err != "not configured"}
    body = {
        "status": "ok" if not failed else "unavailable",
        "database": "ok" if not checks["database"] else "error",
        "redis": "not configured" if not settings.REDIS_URL else ("ok" if not checks["redis"] else "error"),
    }
    if failed:
        body["errors"] = failed
    return JsonResponse(body, status=200 if not failed else 503)
