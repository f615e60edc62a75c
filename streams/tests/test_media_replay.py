"""Replays: product moments and the player/moments partials a room page includes."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.utils import timezone

from accounts.models import HostProfile, User
from catalog.models import Product, ProductImage, Retailer
from streams.models import PinEvent, Room, ShelfItem
from streams.replay import product_moments

pytestmark = pytest.mark.django_db


def make_room(*, started_minutes_ago=30) -> Room:
    user = User.objects.create_user(username="leo", password="x-pass-12345")
    host = HostProfile.objects.create(user=user, handle="leo", status=HostProfile.Status.APPROVED)
    now = timezone.now()
    return Room.objects.create(
        host=host, title="Phone week", scheduled_start=now - timedelta(hours=1), status=Room.Status.ENDED,
        started_at=now - timedelta(minutes=started_minutes_ago), ended_at=now,
        replay_playlist="rec/room-1/replay.m3u8",
    )  # fmt: skip


def shelf(room: Room, title: str, *, price="99.00", image="") -> ShelfItem:
    retailer, _ = Retailer.objects.get_or_create(code="jdm", defaults={"name": "JD Mall"})
    product = Product.objects.create(
        retailer=retailer, sku=title[:20], title=title, list_price=Decimal("129.00"), self_operated=True,
        sellable=True, retailer_stock=50,
    )  # fmt: skip
    if image:
        ProductImage.objects.create(product=product, url=image)
    return ShelfItem.objects.create(room=room, product=product, live_price=Decimal(price))


def pin(room: Room, item: ShelfItem, *, after: timedelta, shown: timedelta | None = None) -> PinEvent:
    at = room.started_at + after
    return PinEvent.objects.create(room=room, item=item, pinned_at=at, unpinned_at=at + shown if shown else None)


def test_moments_are_the_pins_in_order_with_offsets_from_the_start():
    room = make_room()
    kettle = shelf(room, "Smart kettle", price="89.00", image="https://img.example/kettle.jpg")
    blender = shelf(room, "Blender", price="199.00")
    pin(room, blender, after=timedelta(minutes=12, seconds=5), shown=timedelta(minutes=3))
    pin(room, kettle, after=timedelta(seconds=95), shown=timedelta(seconds=40))
    pin(room, kettle, after=timedelta(minutes=20))

    moments = product_moments(room=room)

    assert [(m.title, m.offset) for m in moments] == [("Smart kettle", 95), ("Blender", 725), ("Smart kettle", 1200)]
    assert [m.label for m in moments] == ["1:35", "12:05", "20:00"]
    assert moments[0].image == "https://img.example/kettle.jpg"
    assert moments[0].live_price == Decimal("89.00")
    assert moments[0].shown_for == 40
    assert moments[2].shown_for is None


def test_a_pin_before_the_recording_started_seeks_to_zero():
    room = make_room()
    item = shelf(room, "Rice cooker")
    pin(room, item, after=timedelta(minutes=-5))
    assert product_moments(room=room)[0].offset == 0


def test_a_room_that_never_went_live_has_no_moments():
    room = make_room()
    item = shelf(room, "Rice cooker")
    pin(room, item, after=timedelta(minutes=1))
    Room.objects.filter(pk=room.pk).update(started_at=None)
    room.refresh_from_db()
    assert product_moments(room=room) == []


def test_long_shows_label_hours():
    room = make_room(started_minutes_ago=200)
    item = shelf(room, "Air fryer")
    pin(room, item, after=timedelta(hours=1, minutes=2, seconds=9))
    assert product_moments(room=room)[0].label == "1:02:09"


def test_moments_partial_renders_keyboard_buttons_that_seek(django_assert_max_num_queries):
    room = make_room()
    for n in range(6):
        pin(room, shelf(room, f"Gadget {n}", image=f"https://img.example/{n}.jpg"), after=timedelta(minutes=n + 1))

    with django_assert_max_num_queries(4):  # no query per moment
        html = Template('{% include "streams/_moments.html" %}').render(Context({"room": room}))

    assert html.count("<button") == 6
    assert 'data-seek="60"' in html and 'data-seek="360"' in html
    assert 'aria-label="Watch Gadget 0 at 1:00"' in html


def test_moments_partial_says_so_when_nothing_was_pinned():
    room = make_room()
    html = Template('{% include "streams/_moments.html" %}').render(Context({"room": room}))
    assert "did not pin any products" in html
    assert "<button" not in html


def test_player_partial_gives_the_player_public_urls_only(settings):
    settings.HLS_URL = "http://media.example:8080/hls/"
    room = make_room()
    html = Template('{% include "streams/_player.html" %}').render(Context({"room": room}))

    config = json.loads(html.split('id="player-config" type="application/json">')[1].split("</script>")[0])
    assert config["status"] == "ended"
    assert config["replayUrl"] == "http://media.example:8080/hls/rec/room-1/replay.m3u8"
    assert config["liveUrl"] == f"http://media.example:8080/hls/live/room-{room.pk}/index.m3u8"
    assert room.stream_key not in html
    assert "vendor/hls.js/hls.light.min.js" in html
    assert "cdn" not in html.lower()


def test_player_partial_for_a_scheduled_room_says_starting_soon():
    room = make_room()
    Room.objects.filter(pk=room.pk).update(status=Room.Status.SCHEDULED, started_at=None, replay_playlist="")
    room.refresh_from_db()
    html = Template('{% include "streams/_player.html" %}').render(Context({"room": room}))
    assert 'data-state="soon"' in html
    assert "Starting soon" in html
