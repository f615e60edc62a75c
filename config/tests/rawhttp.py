"""HTTP requests handed to the ASGI application as a server hands them over: raw header
bytes (a server passes on whatever bytes a client sent), through config.asgi's router,
so the sandbox retailer's mount in front of Django is exercised too."""

from __future__ import annotations

import json

from asgiref.testing import ApplicationCommunicator


async def request(
    path: str, *, method: str = "POST", body: bytes = b"", headers: list[tuple[bytes, bytes]] = (), query: bytes = b""
) -> tuple[int, bytes]:
    """(status, body) of one request to config.asgi.application."""
    from config.asgi import application

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode()), *headers],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip
    app = ApplicationCommunicator(application, scope)
    await app.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await app.receive_output(timeout=10)
    assert start["type"] == "http.response.start", start
    content = b""
    while True:
        message = await app.receive_output(timeout=10)
        content += message.get("body", b"")
        if not message.get("more_body"):
            break
    await app.wait(timeout=5)
    return start["status"], content


def json_body(content: bytes) -> dict:
    return json.loads(content) if content else {}
