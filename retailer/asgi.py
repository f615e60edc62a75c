"""The sandbox retailer's HTTP API served straight from ASGI, in front of Django.

config/asgi.py sends every HTTP request under /retailer-api/v1/ here; everything else goes
to Django. The answers are those of the Django view (both call `retailer.views.respond`),
but a request skips Django's middleware: sessions, CSRF, auth, messages and static files
mean nothing to a signed machine-to-machine API, and under ASGI each of those middlewares
costs a hop between the event loop and a thread (a refused request cost 3.3 ms of CPU
that way; docs/performance.md, "Hand-off to the retailer").

The work runs on a small pool of long-lived threads, so a thread's database connection is
kept between requests as DB_CONN_MAX_AGE allows (Django under ASGI opens a thread, and
with it a connection, per request). Each request begins and ends with
`close_old_connections()`, as Django's request signals would: an expired or broken
connection is replaced, and DB_CONN_MAX_AGE=0 still means one connection per request.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.core.serializers.json import DjangoJSONEncoder
from django.db import close_old_connections
from django.utils.datastructures import CaseInsensitiveMapping

import inbound
from retailer import views

PREFIX = "/retailer-api/v1/"
THREADS = 16  # at most this many requests at once per process; each thread opens its connection when first used
_executor = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="retailer-api")


def mount(django_app):
    """An ASGI app: the retailer's API under PREFIX, `django_app` for everything else."""

    async def app(scope, receive, send):
        if scope["type"] == "http" and _path(scope).startswith(PREFIX):
            await serve(scope, receive, send)
        else:
            await django_app(scope, receive, send)

    return app


def _path(scope) -> str:
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _read_body(receive) -> bytes:
    """The request body, or its first MAX_BODY_BYTES + 1 bytes (enough to refuse it)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if size <= views.MAX_BODY_BYTES:
            chunks.append(chunk)
            size += len(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _respond(method: str, name: str, headers: CaseInsensitiveMapping, body: bytes) -> tuple[int, dict, dict]:
    close_old_connections()
    try:
        return views.respond(method=method, name=name, headers=headers, read_body=lambda: body)
    finally:
        close_old_connections()


async def serve(scope, receive, send) -> None:
    headers = CaseInsensitiveMapping({k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]})
    method = scope["method"]
    declared = inbound.content_length(headers.get("Content-Length"))
    acceptable = method == "POST" and declared is not None and declared <= views.MAX_BODY_BYTES
    body = await _read_body(receive) if acceptable else b""
    name = _path(scope)[len(PREFIX) :]
    status, answer, extra = await sync_to_async(_respond, thread_sensitive=False, executor=_executor)(
        method, name, headers, body
    )
    content = json.dumps(answer, cls=DjangoJSONEncoder).encode()
    response_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        (b"x-content-type-options", b"nosniff"),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": content})
