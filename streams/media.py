"""The media server's callbacks (nginx-rtmp `on_publish` / `on_publish_done`) and HLS paths.

nginx POSTs form data (`call`, `app`, `name`, `addr`, ...) for three RTMP applications
(deploy/nginx/nginx.conf.template):

- `live` (the ingest), `name` = the secret stream key. `publish`: a key of a scheduled or
  live room -> the room goes live and publishing, and the answer is a 302 whose Location
  is the room's public stream name (`room-<id>`); nginx-rtmp renames the stream, so HLS
  paths never show the key. Anything else -> 403, nothing changes. `publish_done`: the
  room stops publishing and ends.
- `hls` and `rec` (the relay from `live`), `name` = the public name. `publish` is allowed
  only while that room is publishing. `publish_done` on `rec` means the recording is
  complete: the room ends (if it has not) and its replay playlist is written.

Only the media server may call these: with MEDIA_HOOK_SECRET set every call must carry it
(`?secret=` in the hook URL, or an `X-Media-Hook-Secret` header), without it only callers
on loopback are believed.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import shutil
import time
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from streams import services
from streams.models import Room

logger = logging.getLogger(__name__)

PUBLIC_NAME = re.compile(r"room-([1-9][0-9]{0,17})")
# The RTMP applications in deploy/nginx/nginx.conf.template.
APP_INGEST = "live"  # encoders publish here with the stream key
APP_HLS = "hls"  # relay: the live window
APP_REC = "rec"  # relay: the recording
LIVE_DIR = "live"  # HLS_ROOT/live/room-<id>/index.m3u8: what live viewers play
REC_DIR = "rec"  # HLS_ROOT/rec/room-<id>/: the whole show, the replay's fragments
# A publisher whose live playlist was rewritten this recently is still sending video.
FLOWING_SECONDS = 15
REPLAY_FILE = "replay.m3u8"
MAX_FIELD = 200


# --- paths and URLs ------------------------------------------------------------------------


def public_stream_name(room: Room) -> str:
    """The name the stream carries after on_publish: the only name viewers ever see."""
    return f"room-{room.pk}"


def live_playlist_path(room: Room) -> str:
    """The live HLS playlist, relative to settings.HLS_URL."""
    return f"{LIVE_DIR}/{public_stream_name(room)}/index.m3u8"


def replay_playlist_path(room: Room) -> str:
    """Where the replay playlist is written, relative to settings.HLS_URL."""
    return f"{REC_DIR}/{public_stream_name(room)}/{REPLAY_FILE}"


def hls_url(relative: str) -> str:
    return settings.HLS_URL.rstrip("/") + "/" + relative.lstrip("/")


def write_replay_playlist(*, room: Room) -> str:
    """Turn the room's recording playlist into a seekable VOD playlist; return its path.

    The recording (`rec`) playlist nginx-rtmp keeps holds every fragment of the show but is
    a live playlist (no end). The replay is the same list marked VOD and ended, next to the
    fragments. Returns "" when nothing was recorded (the encoder never sent a fragment).
    """
    folder = Path(settings.HLS_ROOT) / REC_DIR / public_stream_name(room)
    source = folder / "index.m3u8"
    try:
        lines = source.read_text().splitlines()
    except (FileNotFoundError, NotADirectoryError, PermissionError, UnicodeDecodeError):
        return ""
    if not any(line.startswith("#EXTINF") for line in lines):
        return ""
    out = []
    for line in lines:
        if line.startswith(("#EXT-X-PLAYLIST-TYPE", "#EXT-X-ENDLIST")):
            continue
        out.append(line)
        if line.startswith("#EXT-X-VERSION"):
            out.append("#EXT-X-PLAYLIST-TYPE:VOD")
    out.append("#EXT-X-ENDLIST")
    target = folder / REPLAY_FILE
    partial = folder / (REPLAY_FILE + ".part")
    try:
        partial.write_text("\n".join(out) + "\n")
        partial.replace(target)  # atomic: a player never reads half a playlist
    except OSError:
        logger.exception("media: could not write the replay playlist for room %s", room.pk)
        return ""
    return replay_playlist_path(room)


def stream_is_flowing(*, room: Room) -> bool:
    """True while nginx keeps rewriting the room's live playlist (an encoder is sending).

    `publishing` alone can be stale: a media server that stops without calling
    on_publish_done leaves it set, and the host must still be able to reconnect.
    """
    playlist = Path(settings.HLS_ROOT) / live_playlist_path(room)
    try:
        return time.time() - playlist.stat().st_mtime < FLOWING_SECONDS
    except OSError:
        return False


def clear_stale_media(*, room: Room) -> None:
    """A room going live for the first time starts with empty HLS folders.

    Folders named after this room can be left over from an earlier database (a re-seeded
    demo reuses ids); a replay must never show another show's fragments.
    """
    for sub in (LIVE_DIR, REC_DIR):
        folder = Path(settings.HLS_ROOT) / sub / public_stream_name(room)
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)


# --- who may call ------------------------------------------------------------------------------


def caller_is_media_server(request: HttpRequest) -> bool:
    secret = settings.MEDIA_HOOK_SECRET
    if secret:
        given = request.GET.get("secret") or request.headers.get("X-Media-Hook-Secret") or ""
        return hmac.compare_digest(given.encode(), secret.encode())
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def _text(status: int, message: str) -> HttpResponse:
    return HttpResponse(message + "\n", status=status, content_type="text/plain; charset=utf-8")


def _field(request: HttpRequest, name: str) -> str | None:
    value = request.POST.get(name, "")
    if not value or len(value) > MAX_FIELD or any(ord(ch) < 33 or ord(ch) == 127 for ch in value):
        return None
    return value


def _room_by_public_name(name: str) -> Room | None:
    match = PUBLIC_NAME.fullmatch(name)
    return Room.objects.filter(pk=int(match.group(1))).first() if match else None


# --- what a callback does --------------------------------------------------------------------


def media_publish_start(*, stream_key: str) -> Room | None:
    """An encoder starts publishing with `stream_key`: the room goes live, or None (refused)."""
    with transaction.atomic():
        room = (
            Room.objects.select_for_update()
            .filter(stream_key=stream_key, status__in=[Room.Status.SCHEDULED, Room.Status.LIVE])
            .first()
        )
        if room is None or (room.publishing and stream_is_flowing(room=room)):
            # Unknown key, ended room, or a second encoder on a room already on air.
            return None
        if room.started_at is None:
            clear_stale_media(room=room)
        if room.status != Room.Status.LIVE:
            services.room_go_live(room=room)
        services.room_set_publishing(room=room, publishing=True)
    return room


def media_publish_stop(*, room: Room, recording_complete: bool) -> Room:
    """Publishing stopped: the room ends; once the recording is complete, it has a replay.

    Called twice per show (the ingest stops, then the recorder closes its playlist), in
    either order; each call is safe to repeat.
    """
    with transaction.atomic():
        room = Room.objects.select_for_update().get(pk=room.pk)
        if room.publishing:
            services.room_set_publishing(room=room, publishing=False)
        if room.status != Room.Status.ENDED:
            services.room_end(room=room)
        room.refresh_from_db()
        replay = write_replay_playlist(room=room)
        if replay and (recording_complete or not room.replay_playlist) and room.replay_playlist != replay:
            room.replay_playlist = replay
            room.save(update_fields=["replay_playlist"])
    return room


# --- the views ------------------------------------------------------------------------------


@csrf_exempt
@require_POST
def on_publish(request: HttpRequest) -> HttpResponse:
    if not caller_is_media_server(request):
        logger.warning("media: on_publish refused a caller that is not the media server")
        return _text(403, "Only the media server may call this hook.")
    app, name, call = _field(request, "app"), _field(request, "name"), _field(request, "call")
    if app is None or name is None or call != "publish":
        return _text(400, "Expected form fields call=publish, app and name.")

    if app == APP_INGEST:
        room = media_publish_start(stream_key=name)
        if room is None:
            logger.info("media: refused a publish with an unknown or spent stream key")
            return _text(403, "Unknown stream key, or the room has ended.")
        logger.info("media: room %s is publishing", room.pk)
        response = _text(302, "Publishing as " + public_stream_name(room))
        # nginx-rtmp renames the stream to a Location that is not an rtmp:// URL.
        response["Location"] = public_stream_name(room)
        return response

    if app in (APP_HLS, APP_REC):
        room = _room_by_public_name(name)
        if room is None or not room.publishing or room.status != Room.Status.LIVE:
            return _text(403, "That room is not publishing.")
        return _text(200, "Relay accepted.")

    return _text(400, "Unknown application.")


@csrf_exempt
@require_POST
def on_publish_done(request: HttpRequest) -> HttpResponse:
    if not caller_is_media_server(request):
        logger.warning("media: on_publish_done refused a caller that is not the media server")
        return _text(403, "Only the media server may call this hook.")
    app, name, call = _field(request, "app"), _field(request, "name"), _field(request, "call")
    if app is None or name is None or call != "publish_done":
        return _text(400, "Expected form fields call=publish_done, app and name.")

    if app == APP_INGEST:
        room = Room.objects.filter(stream_key=name).first()
        if room is None:
            # A key rotated mid-show: the recorder's own publish_done ends the room.
            return _text(200, "No room has that key now; nothing to do.")
        media_publish_stop(room=room, recording_complete=False)
        return _text(200, "Publishing stopped.")

    if app == APP_REC:
        room = _room_by_public_name(name)
        if room is None:
            return _text(404, "No such room.")
        room = media_publish_stop(room=room, recording_complete=True)
        return _text(200, "Recording closed: " + (room.replay_playlist or "nothing recorded"))

    if app == APP_HLS:
        return _text(200, "Nothing to do.")
    return _text(400, "Unknown application.")
