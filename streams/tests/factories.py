"""Test data built through the real models and services."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import timedelta
from decimal import Decimal

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.models import HostProfile, User
from catalog.models import Product, ProductImage, Retailer
from streams import services
from streams.models import Room

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
_seq = itertools.count(1)


def make_user(username: str | None = None) -> User:
    return User.objects.create_user(username=username or f"user{next(_seq)}", password="tulip-garden-42")


def make_host(username: str | None = None) -> HostProfile:
    user = make_user(username)
    return HostProfile.objects.create(user=user, handle=user.username, status=HostProfile.Status.APPROVED)


def make_product(*, list_price="299.00", floor=None, sellable=True, stock=50, title=None) -> Product:
    retailer, _ = Retailer.objects.get_or_create(code="jdm", defaults={"name": "JD Mall Self-Operated"})
    n = next(_seq)
    product = Product.objects.create(
        retailer=retailer, sku=f"SKU{n}", title=title or f"Wireless earbuds {n}", list_price=Decimal(list_price),
        self_operated=True, in_feed=True, sellable=sellable, retailer_stock=stock,
        min_live_price=Decimal(floor) if floor else None,
    )  # fmt: skip
    ProductImage.objects.create(product=product, url=f"/static/img/p{n}.png")
    return product


def make_room(*, host: HostProfile | None = None, live: bool = True, products: int = 2) -> Room:
    host = host or make_host()
    room = services.room_create(
        host=host, title="Kitchen gadgets live", scheduled_start=timezone.now() + timedelta(hours=1)
    )
    for i in range(products):
        product = make_product(list_price=f"{100 + i * 50}.00")
        services.shelf_add(room=room, product_id=product.pk, live_price=f"{80 + i * 50}.00", by=host.user)
    if live:
        room = services.room_go_live(room=room)
    room.refresh_from_db()
    return room


def session_cookie(user: User) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def connect(room_id: int, user: User | None = None, *, origin=ORIGIN):
    """Open a room socket (logged in as `user` if given); returns (communicator, snapshot)."""
    from config.asgi import application

    headers = [origin]
    if user is not None:
        headers.append((b"cookie", await database_sync_to_async(session_cookie)(user)))
    communicator = WebsocketCommunicator(application, f"/ws/rooms/{room_id}/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    first = await communicator.receive_json_from(timeout=5)
    return communicator, first


async def receive_type(communicator, wanted: str, timeout: float = 3.0) -> dict:
    """The next frame of type `wanted`, skipping counts frames and others."""
    while True:
        event = await communicator.receive_json_from(timeout=timeout)
        if event["type"] == wanted:
            return event
        assert event["type"] != "error", f"expected {wanted}, got {event}"


# --- a real server's sockets (websockets client) --------------------------------------------


def ws_url(base_url: str, room_id: int) -> str:
    """The room socket's URL on a real server at `base_url` (http://host:port)."""
    return base_url.replace("http://", "ws://") + f"/ws/rooms/{room_id}/"


async def next_of(ws, wanted: str, timeout: float = 5.0) -> dict:
    """The next frame of type `wanted` on a websockets client socket, skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if event["type"] == wanted:
            return event
