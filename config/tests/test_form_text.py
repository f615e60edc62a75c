"""Form fields and query strings with NUL or control characters get a clear 400, never a 500."""

import pytest
from django.urls import reverse

from streams.models import RoomModerator
from streams.tests.factories import make_room

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value", ["lena\x00", "bell\x07", "esc\x1b[31m"], ids=["nul", "bell", "escape"])
def test_a_studio_form_field_with_a_control_character_is_refused_and_changes_nothing(client, value):
    room = make_room()
    client.force_login(room.host.user)
    url = reverse("streams:studio_action", args=[room.pk, "mod_add"])
    answer = client.post(url, {"username": value, "back": "moderation"})
    assert answer.status_code == 400
    assert "control characters" in answer.content.decode()
    assert not RoomModerator.objects.exists()


def test_a_query_string_with_nul_is_refused_as_json_for_json_clients(client):
    answer = client.get(reverse("orders:quote"), {"item": "1\x00"}, headers={"Accept": "application/json"})
    assert answer.status_code == 400 and answer.json()["code"] == "bad_text"


def test_tabs_and_newlines_in_a_textarea_are_fine(client):
    answer = client.post(reverse("accounts:login"), {"username": "someone", "password": "two\tparts\r\nhere"})
    assert answer.status_code == 200  # the log-in page again, with "wrong password": nothing refused the text
