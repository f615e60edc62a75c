"""The media server's hooks: who may go live, what a viewer's HLS path shows, replays."""

import os
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import HostProfile, User
from streams import media, services
from streams.models import Room

pytestmark = pytest.mark.django_db

PUBLISH = "/media-hooks/on_publish"
DONE = "/media-hooks/on_publish_done"


@pytest.fixture(autouse=True)
def hls_root(settings, tmp_path):
    settings.HLS_ROOT = tmp_path / "hls"
    settings.MEDIA_HOOK_SECRET = ""
    return settings.HLS_ROOT


def make_room(*, status=Room.Status.SCHEDULED, handle="mia") -> Room:
    user = User.objects.create_user(username=handle, password="x-pass-12345")
    host = HostProfile.objects.create(user=user, handle=handle, status=HostProfile.Status.APPROVED)
    room = Room.objects.create(host=host, title="Kitchen gadgets", scheduled_start=timezone.now() + timedelta(hours=1))
    if status == Room.Status.LIVE:
        services.room_go_live(room=room)
    elif status == Room.Status.ENDED:
        services.room_go_live(room=room)
        services.room_end(room=room)
    room.refresh_from_db()
    return room


def publish(client, name, *, app="live", call="publish", addr="127.0.0.1", path=PUBLISH, **extra):
    data = {"app": app, "flashver": "FMLE/3.0", "tcurl": f"rtmp://127.0.0.1:1935/{app}", "addr": "127.0.0.1",
            "clientid": "1", "call": call, "name": name, "type": "live"}  # fmt: skip
    return client.post(path, data, REMOTE_ADDR=addr, **extra)


def snapshot(room: Room) -> tuple:
    room.refresh_from_db()
    return (room.status, room.publishing, room.started_at, room.ended_at, room.version, room.replay_playlist)


def write_recording(hls_root, room: Room, fragments=3) -> None:
    folder = hls_root / "rec" / f"room-{room.pk}"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-TARGETDURATION:3",
             "#EXT-X-DISCONTINUITY"]  # fmt: skip
    for n in range(fragments):
        (folder / f"{n}.ts").write_bytes(b"\x47" * 188)
        lines += ["#EXTINF:2.000,", f"{n}.ts"]
    (folder / "index.m3u8").write_text("\n".join(lines) + "\n")


def write_live_playlist(hls_root, room: Room, *, age_seconds: float) -> None:
    folder = hls_root / "live" / f"room-{room.pk}"
    folder.mkdir(parents=True, exist_ok=True)
    playlist = folder / "index.m3u8"
    playlist.write_text("#EXTM3U\n#EXTINF:1.000,\n0.ts\n")
    stamp = time.time() - age_seconds
    os.utime(playlist, (stamp, stamp))


# --- on_publish --------------------------------------------------------------------------


def test_valid_key_puts_the_room_live_under_its_public_name(client):
    room = make_room()
    response = publish(client, room.stream_key)

    assert response.status_code == 302
    assert response["Location"] == f"room-{room.pk}"
    assert room.stream_key not in response["Location"]
    room.refresh_from_db()
    assert room.status == Room.Status.LIVE
    assert room.publishing is True
    assert room.started_at is not None


def test_player_urls_never_contain_the_stream_key():
    room = make_room()
    from streams.replay import player_config

    config = player_config(room=room)
    assert config["liveUrl"].endswith(f"/live/room-{room.pk}/index.m3u8")
    assert room.stream_key not in str(config)


def test_a_live_room_reconnecting_encoder_is_accepted(client, hls_root):
    room = make_room(status=Room.Status.LIVE)
    started = room.started_at
    # The media server stopped without saying so: publishing is stale, nothing flows.
    Room.objects.filter(pk=room.pk).update(publishing=True)
    write_live_playlist(hls_root, room, age_seconds=120)

    assert publish(client, room.stream_key).status_code == 302
    room.refresh_from_db()
    assert room.status == Room.Status.LIVE and room.publishing
    assert room.started_at == started


def test_a_second_encoder_on_a_room_on_air_is_refused(client, hls_root):
    room = make_room()
    assert publish(client, room.stream_key).status_code == 302
    write_live_playlist(hls_root, room, age_seconds=1)
    before = snapshot(room)

    assert publish(client, room.stream_key).status_code == 403
    assert snapshot(room) == before


def test_unknown_key_is_refused_and_nothing_changes(client):
    room = make_room()
    before = snapshot(room)

    response = publish(client, "sk_not-a-real-key")

    assert response.status_code == 403
    assert snapshot(room) == before


def test_public_name_is_not_a_stream_key(client):
    room = make_room()
    before = snapshot(room)
    assert publish(client, f"room-{room.pk}").status_code == 403
    assert snapshot(room) == before


def test_ended_room_key_is_refused(client):
    room = make_room(status=Room.Status.ENDED)
    before = snapshot(room)

    assert publish(client, room.stream_key).status_code == 403
    assert snapshot(room) == before


def test_rotated_key_refuses_the_old_and_accepts_the_new(client):
    room = make_room()
    old_key = room.stream_key
    room = services.room_rotate_stream_key(room=room)

    assert publish(client, old_key).status_code == 403
    assert Room.objects.get(pk=room.pk).status == Room.Status.SCHEDULED
    assert publish(client, room.stream_key).status_code == 302


def test_caller_off_loopback_is_refused_without_a_secret(client):
    room = make_room()
    before = snapshot(room)

    assert publish(client, room.stream_key, addr="203.0.113.7").status_code == 403
    assert publish(client, room.stream_key, addr="not-an-ip").status_code == 403
    assert snapshot(room) == before


def test_with_a_secret_only_callers_that_know_it_get_in(client, settings):
    settings.MEDIA_HOOK_SECRET = "s3cret-hook"
    room = make_room()
    before = snapshot(room)

    assert publish(client, room.stream_key).status_code == 403  # loopback alone is not enough
    assert publish(client, room.stream_key, path=PUBLISH + "?secret=wrong").status_code == 403
    assert snapshot(room) == before

    assert publish(client, room.stream_key, path=PUBLISH + "?secret=s3cret-hook", addr="10.0.0.5").status_code == 302


def test_secret_may_come_as_a_header(client, settings):
    settings.MEDIA_HOOK_SECRET = "s3cret-hook"
    room = make_room()
    response = publish(client, room.stream_key, headers={"X-Media-Hook-Secret": "s3cret-hook"})
    assert response.status_code == 302


def test_first_go_live_clears_folders_left_by_an_older_database(client, hls_root):
    room = make_room()
    stale = hls_root / "rec" / f"room-{room.pk}"
    stale.mkdir(parents=True)
    (stale / "99.ts").write_bytes(b"old show")

    assert publish(client, room.stream_key).status_code == 302
    assert not stale.exists()


# --- the relay applications ----------------------------------------------------------------


def test_relay_publish_is_allowed_only_for_a_room_that_is_publishing(client):
    room = make_room()
    assert publish(client, f"room-{room.pk}", app="hls").status_code == 403
    assert publish(client, f"room-{room.pk}", app="rec").status_code == 403

    publish(client, room.stream_key)
    assert publish(client, f"room-{room.pk}", app="hls").status_code == 200
    assert publish(client, f"room-{room.pk}", app="rec").status_code == 200
    assert publish(client, "room-999999", app="hls").status_code == 403
    assert publish(client, room.stream_key, app="hls").status_code == 403


# --- on_publish_done ---------------------------------------------------------------------------


def test_publish_done_ends_the_room_and_records_the_replay(client, hls_root):
    room = make_room()
    publish(client, room.stream_key)
    write_recording(hls_root, room)

    response = publish(client, room.stream_key, call="publish_done", path=DONE)

    assert response.status_code == 200
    room.refresh_from_db()
    assert room.status == Room.Status.ENDED
    assert room.publishing is False
    assert room.ended_at is not None
    assert room.replay_playlist == f"rec/room-{room.pk}/replay.m3u8"
    replay = (hls_root / room.replay_playlist).read_text()
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in replay
    assert replay.rstrip().endswith("#EXT-X-ENDLIST")
    assert replay.count("#EXTINF") == 3
    assert room.stream_key not in replay


def test_recorder_done_rewrites_the_replay_with_the_last_fragments(client, hls_root):
    room = make_room()
    publish(client, room.stream_key)
    write_recording(hls_root, room, fragments=2)
    publish(client, room.stream_key, call="publish_done", path=DONE)
    write_recording(hls_root, room, fragments=4)  # the recorder closed its last fragment

    response = publish(client, f"room-{room.pk}", app="rec", call="publish_done", path=DONE)

    assert response.status_code == 200
    room.refresh_from_db()
    assert room.status == Room.Status.ENDED
    assert (hls_root / room.replay_playlist).read_text().count("#EXTINF") == 4


def test_recorder_done_alone_ends_the_room_after_a_key_rotation(client, hls_root):
    room = make_room()
    old_key = room.stream_key
    publish(client, old_key)
    services.room_rotate_stream_key(room=room)
    write_recording(hls_root, room)

    assert publish(client, old_key, call="publish_done", path=DONE).status_code == 200
    assert Room.objects.get(pk=room.pk).status == Room.Status.LIVE  # the old key names no room now

    assert publish(client, f"room-{room.pk}", app="rec", call="publish_done", path=DONE).status_code == 200
    room.refresh_from_db()
    assert room.status == Room.Status.ENDED and room.replay_playlist


def test_publish_done_without_any_recording_leaves_no_replay(client):
    room = make_room()
    publish(client, room.stream_key)

    assert publish(client, room.stream_key, call="publish_done", path=DONE).status_code == 200
    room.refresh_from_db()
    assert room.status == Room.Status.ENDED
    assert room.replay_playlist == ""


def test_publish_done_from_a_stranger_changes_nothing(client):
    room = make_room()
    publish(client, room.stream_key)
    before = snapshot(room)

    assert publish(client, room.stream_key, call="publish_done", path=DONE, addr="198.51.100.1").status_code == 403
    assert snapshot(room) == before


# --- malformed calls ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"app": "live", "call": "publish"},  # no name
        {"app": "live", "name": "x"},  # no call
        {"app": "live", "call": "play", "name": "x"},
        {"app": "live", "call": "publish", "name": "k" * 500},
        {"app": "live", "call": "publish", "name": "bad key\n"},
        {"app": "other", "call": "publish", "name": "room-1"},
        {"app": "", "call": "publish", "name": "x"},
    ],
)
def test_malformed_publish_is_a_clear_400(client, data):
    room = make_room()
    before = snapshot(room)
    response = client.post(PUBLISH, data)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert snapshot(room) == before


@pytest.mark.parametrize(
    "data",
    [{}, {"app": "live", "call": "publish", "name": "x"}, {"app": "zzz", "call": "publish_done", "name": "x"}],
)
def test_malformed_publish_done_is_a_clear_400(client, data):
    room = make_room()
    publish(client, room.stream_key)
    before = snapshot(room)
    assert client.post(DONE, data).status_code == 400
    assert snapshot(room) == before


def test_hooks_take_only_post(client):
    assert client.get(PUBLISH).status_code == 405
    assert client.get(DONE).status_code == 405


def test_json_or_garbage_body_is_refused_cleanly(client):
    room = make_room()
    before = snapshot(room)
    response = client.post(PUBLISH, data=b"\xff\xfe{not form", content_type="application/json")
    assert response.status_code == 400
    assert snapshot(room) == before


def test_replay_playlist_is_not_written_for_an_empty_recording(hls_root):
    room = make_room()
    folder = hls_root / "rec" / f"room-{room.pk}"
    folder.mkdir(parents=True)
    (folder / "index.m3u8").write_text("#EXTM3U\n#EXT-X-VERSION:3\n")
    assert media.write_replay_playlist(room=room) == ""
    assert not (folder / "replay.m3u8").exists()
