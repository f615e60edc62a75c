"""Pages: home discovery, room page, studio (create, shelf rules, go live, end), notifications."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import HostProfile
from streams import services
from streams.models import Follow, Notification, Room, ShelfItem
from streams.services import RoomError
from streams.tests.factories import make_host, make_product, make_room, make_user

pytestmark = pytest.mark.django_db


def test_home_lists_live_upcoming_and_replays(client):
    live = make_room(live=True)
    upcoming = make_room(live=False)
    ended = services.room_end(room=make_room(live=True))
    page = client.get("/").content.decode()
    assert page.index(live.title) < page.index('id="upcoming"')
    assert f'href="/rooms/{upcoming.pk}/"' in page and "data-countdown" in page
    assert f'href="/rooms/{ended.pk}/"' in page and "Replay" in page


def test_room_page_has_the_live_room_shell(client):
    room = make_room()
    page = client.get(room.get_absolute_url()).content.decode()
    assert f'data-ws-path="/ws/rooms/{room.pk}/"' in page
    assert 'id="buy-sheet-root"' in page and 'data-action="buy"' in page
    assert "Log in</a> to chat" in page
    assert client.get("/rooms/999999/").status_code == 404


def test_studio_is_for_approved_hosts_only(client):
    user = make_user()
    client.force_login(user)
    assert client.get("/studio/").url == reverse("accounts:host_apply")
    HostProfile.objects.create(user=user, handle="pending-host")
    assert client.get("/studio/").status_code == 302


def test_host_schedules_a_room_and_builds_the_shelf_within_price_rules(client):
    host = make_host()
    client.force_login(host.user)
    start = (timezone.localtime() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        "/studio/", {"title": "Sneaker drop", "description": "Limited pairs", "scheduled_start": start}
    )
    room = Room.objects.get(title="Sneaker drop")
    assert response.url == f"/studio/rooms/{room.pk}/"
    assert room.status == "scheduled" and room.host == host

    product = make_product(list_price="500.00", floor="400.00")
    url = f"/studio/rooms/{room.pk}/shelf_add"
    for bad in ("501.00", "399.99", "abc", "-1"):
        client.post(url, {"product_id": product.pk, "live_price": bad})
    assert not ShelfItem.objects.filter(room=room).exists()
    third_party = make_product(list_price="100.00", sellable=False)
    client.post(url, {"product_id": third_party.pk, "live_price": "90.00"})
    assert not ShelfItem.objects.filter(room=room).exists()
    client.post(url, {"product_id": product.pk, "live_price": "450.00"})
    assert ShelfItem.objects.get(room=room).live_price == 450

    page = client.get(f"/studio/rooms/{room.pk}/").content.decode()
    assert room.stream_key in page and "rtmp://" in page and 'id="panel-sales"' in page
    results = client.get(f"/studio/rooms/{room.pk}/products.json?q=").json()["results"]
    assert any(r["id"] == product.pk and r["on_shelf"] for r in results)
    assert all(r["id"] != third_party.pk for r in results)


def test_studio_go_live_end_and_rotate_key(client):
    room = make_room(live=False)
    fan = make_user()
    Follow.objects.create(user=fan, host=room.host)
    client.force_login(room.host.user)
    old_key = room.stream_key
    client.post(f"/studio/rooms/{room.pk}/rotate_key")
    client.post(f"/studio/rooms/{room.pk}/go_live")
    room.refresh_from_db()
    assert room.status == "live" and room.stream_key != old_key
    assert Notification.objects.filter(user=fan, room=room).count() == 1
    client.post(f"/studio/rooms/{room.pk}/end")
    room.refresh_from_db()
    assert room.status == "ended" and room.ended_at is not None


def test_another_host_cannot_touch_my_room(client):
    room = make_room(live=False)
    client.force_login(make_host().user)
    assert client.get(f"/studio/rooms/{room.pk}/").status_code == 404
    assert client.post(f"/studio/rooms/{room.pk}/go_live").status_code == 404
    room.refresh_from_db()
    assert room.status == "scheduled"


def test_notifications_page_and_bell(client):
    room = make_room(live=False)
    fan = make_user()
    Follow.objects.create(user=fan, host=room.host)
    services.room_go_live(room=room)
    client.force_login(fan)
    assert "1 unread" in client.get("/").content.decode()
    page = client.get("/notifications/").content.decode()
    assert f"@{room.host.handle} is live" in page and "Watch now" in page
    client.post("/notifications/")
    assert "unread" not in client.get("/").content.decode().split("</header>")[0]


def test_services_refuse_bad_lifecycle_and_keep_pin_history():
    room = make_room()
    host = room.host.user
    items = list(room.shelf.all())
    services.room_pin(room=room, item_id=items[0].pk, by=host)
    services.room_pin(room=room, item_id=items[1].pk, by=host)
    services.room_end(room=room)
    assert [p.unpinned_at is not None for p in room.pins.order_by("pinned_at")] == [True, True]
    with pytest.raises(RoomError):
        services.room_go_live(room=room)
    with pytest.raises(RoomError):
        services.room_pin(room=room, item_id=items[0].pk, by=host)
    room.refresh_from_db()
    assert room.pinned_item_id is None
