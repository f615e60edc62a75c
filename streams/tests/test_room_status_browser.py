"""The player follows the room's status as it arrives on the socket: no reload needed
when the host goes live or ends the show."""

import pytest
from playwright.sync_api import expect

from streams import services
from streams.tests.factories import make_room

pytestmark = pytest.mark.browser


def test_viewers_player_switches_from_starting_soon_to_live_to_ended_without_a_reload(live_url, page):
    room = make_room(live=False, products=1)
    page.goto(f"{live_url}/rooms/{room.pk}/")
    player = page.locator("[data-player]")
    expect(player).to_have_attribute("data-state", "soon")
    expect(page.locator("#status-badge")).to_have_text("Starting soon")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    services.room_go_live(room=room)

    expect(page.locator("#status-badge")).to_have_text("● LIVE", timeout=10_000)
    # No media server in this test: the live player says it waits for the host's video.
    expect(player).not_to_have_attribute("data-state", "soon", timeout=10_000)
    expect(player).to_have_attribute("data-state", "offline")

    room.refresh_from_db()
    services.room_end(room=room)

    expect(page.locator("#status-badge")).to_have_text("Ended", timeout=10_000)
    expect(player).to_have_attribute("data-state", "ended", timeout=10_000)
    assert navigations == []
