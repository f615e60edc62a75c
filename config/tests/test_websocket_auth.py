"""Websockets go through Channels with origin validation and session authentication."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from accounts import services
from config.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def session_cookie_for(username: str) -> str:
    user = services.user_signup(username=username, password="tulip-garden-42")
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


async def test_websocket_knows_the_logged_in_user_from_the_session_cookie():
    cookie = await session_cookie_for("lily")
    communicator = WebsocketCommunicator(
        application, "/ws/hello/", headers=[(b"origin", b"http://127.0.0.1:8000"), (b"cookie", cookie.encode())]
    )

    connected, _ = await communicator.connect()

    assert connected
    assert await communicator.receive_json_from() == {"type": "hello", "user": "lily"}
    await communicator.disconnect()


async def test_websocket_without_session_is_anonymous():
    communicator = WebsocketCommunicator(application, "/ws/hello/", headers=[(b"origin", b"http://localhost:8000")])

    connected, _ = await communicator.connect()

    assert connected
    assert await communicator.receive_json_from() == {"type": "hello", "user": None}
    await communicator.disconnect()


async def test_websocket_from_a_foreign_origin_is_refused():
    communicator = WebsocketCommunicator(application, "/ws/hello/", headers=[(b"origin", b"https://evil.example.com")])

    connected, _ = await communicator.connect()

    assert not connected
