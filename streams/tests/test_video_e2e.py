"""End to end: ffmpeg publishes to the project's nginx-rtmp, a viewer in Chromium watches.

Each module run starts its own stack on free ports: the project's media server
(bin/media-server, nginx with the RTMP module) writing HLS into a temporary folder, and
an ASGI server (conftest's AsgiServer) whose HLS_URL points at that nginx and which
nginx calls back with a shared secret. ffmpeg plays OBS's part.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.utils import timezone

from accounts.models import HostProfile, User
from catalog.models import Product, Retailer
from conftest import ROOT, AsgiServer, free_port
from streams import services
from streams.models import PinEvent, Room, ShelfItem

# Needs ffmpeg, nginx and libnginx-mod-rtmp: .ci/run installs them when missing.
pytestmark = pytest.mark.browser

SECRET = "e2e-hook-secret"


def wait_for(check, *, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class MediaStack:
    def __init__(self, tmp: Path, asgi_env: dict):
        self.rtmp_port, self.http_port = free_port(), free_port()
        self.hls_root = tmp / "hls"
        self.prefix = tmp / "nginx"
        self.hls_url = f"http://127.0.0.1:{self.http_port}/hls/"
        self.publishers: list[subprocess.Popen] = []
        self.nginx = None
        self.web = AsgiServer(
            extra_env={
                **asgi_env,
                "HLS_URL": self.hls_url,
                "HLS_ROOT": str(self.hls_root),
                "MEDIA_HOOK_SECRET": SECRET,
            }
        )
        self.nginx_log = open(tmp / "media-server.log", "w")  # noqa: SIM115
        self.nginx = subprocess.Popen(
            [sys.executable, str(ROOT / "bin" / "media-server"), "--rtmp-listen", f"127.0.0.1:{self.rtmp_port}",
             "--http-listen", f"127.0.0.1:{self.http_port}", "--hls-root", str(self.hls_root),
             "--prefix", str(self.prefix), "--web-url", self.web.url, "--log-level", "info"],
            env={**os.environ, "MEDIA_HOOK_SECRET": SECRET}, stdout=self.nginx_log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: nginx's workers go with it
        )  # fmt: skip
        try:
            wait_for(lambda: port_open(self.rtmp_port) and port_open(self.http_port), timeout=15, what="nginx")
        except AssertionError:
            self.stop()
            raise

    def publish(self, key: str, *, seconds: int) -> subprocess.Popen:
        proc = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
             "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
             "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-t", str(seconds), "-f", "flv", f"rtmp://127.0.0.1:{self.rtmp_port}/live/{key}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        self.publishers.append(proc)
        return proc

    def error_log(self) -> str:
        path = self.prefix / "logs" / "error.log"
        return path.read_text() if path.exists() else ""

    def stop(self):
        for proc in self.publishers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if self.nginx and self.nginx.poll() is None:
            os.killpg(self.nginx.pid, signal.SIGTERM)
            try:
                self.nginx.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.nginx.pid, signal.SIGKILL)
                self.nginx.wait(5)
        self.nginx_log.close()
        self.web.stop()


@pytest.fixture(scope="module")
def media(django_db_setup, django_db_blocker, tmp_path_factory):
    with django_db_blocker.unblock():
        stack = MediaStack(tmp_path_factory.mktemp("media"), asgi_env={})
    yield stack
    stack.stop()


def make_room(handle: str) -> Room:
    user = User.objects.create_user(username=handle, password="x-pass-12345", display_name=handle.title())
    host = HostProfile.objects.create(user=user, handle=handle, status=HostProfile.Status.APPROVED)
    return Room.objects.create(
        host=host, title="Kitchen gadgets, live", description="Deals on kettles and blenders.",
        scheduled_start=timezone.now() + timedelta(minutes=5),
    )  # fmt: skip


def room_now(room: Room) -> Room:
    return Room.objects.get(pk=room.pk)


def video_time(page) -> float:
    return page.evaluate("document.querySelector('[data-player] video').currentTime")


def test_ffmpeg_goes_live_and_a_viewer_watches_it_play(media, transactional_db, page, screenshot):
    room = make_room("mia")
    requests = []
    page.on("request", lambda request: requests.append(request.url))

    publisher = media.publish(room.stream_key, seconds=40)
    live = wait_for(lambda: (r := room_now(room)).status == Room.Status.LIVE and r.publishing and r, timeout=15,
                    what="on_publish to put the room live")  # fmt: skip
    assert live.started_at is not None
    playlist = media.hls_root / "live" / f"room-{room.pk}" / "index.m3u8"
    wait_for(lambda: playlist.exists() and "#EXTINF" in playlist.read_text(), timeout=20, what="the live playlist")

    # nginx serves it to another origin, uncached, with the right type.
    answer = httpx.get(media.hls_url + f"live/room-{room.pk}/index.m3u8", headers={"Origin": media.web.url})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["access-control-allow-origin"] in ("*", media.web.url)
    # Nothing under the HLS folder is named after the secret key.
    assert not [p for p in media.hls_root.rglob("*") if room.stream_key in str(p)]

    page.goto(media.web.url + room.get_absolute_url())
    page.wait_for_function("() => document.querySelector('[data-player]').dataset.state === 'playing'", timeout=20_000)
    first = video_time(page)
    page.wait_for_timeout(2500)
    second = video_time(page)
    assert second > first + 1, f"the video did not advance ({first} -> {second})"
    assert page.locator("[data-player] [data-badge]").inner_text().strip().lower() == "live"
    # The real-time side of the same room: the host pins a product and chats; the viewer
    # watching the video sees both arrive without a reload.
    retailer = Retailer.objects.create(code="jdm-live", name="JD Mall")
    product = Product.objects.create(
        retailer=retailer, sku="E2E-LIVE", title="Smart kettle 1.7 L", list_price=Decimal("129.00"),
        self_operated=True, sellable=True, retailer_stock=30,
    )  # fmt: skip
    item = ShelfItem.objects.create(room=room, product=product, live_price=Decimal("89.00"))
    host_user = room.host.user
    services.room_pin(room=room, item_id=item.pk, by=host_user)
    services.chat_post(room=room, user=host_user, text="The kettle is 89 today only!")
    page.locator("#pinned-card").get_by_text("Smart kettle 1.7 L").wait_for(timeout=10_000)
    page.locator("#chat-list").get_by_text("The kettle is 89 today only!").wait_for(timeout=10_000)
    assert video_time(page) > second  # the video kept playing meanwhile
    screenshot("video-live")
    assert not [url for url in requests if room.stream_key in url]
    assert any(f"/hls/live/room-{room.pk}/" in url and url.endswith(".ts") for url in requests)

    # The encoder stops: the room ends and its recording becomes the replay.
    publisher.terminate()
    publisher.wait(10)
    ended = wait_for(lambda: (r := room_now(room)).status == Room.Status.ENDED and r.replay_playlist and r,
                     timeout=20, what="on_publish_done to end the room")  # fmt: skip
    assert not ended.publishing


def test_a_refused_stream_key_writes_nothing_and_changes_nothing(media, transactional_db):
    room = make_room("ken")
    before = (room.status, room.publishing, room.started_at, room.version)
    folders_before = sorted(p.name for p in media.hls_root.glob("*/*"))

    publisher = media.publish("sk_this-key-does-not-exist", seconds=5)
    returncode = publisher.wait(20)

    assert returncode != 0
    assert sorted(p.name for p in media.hls_root.glob("*/*")) == folders_before
    room = room_now(room)
    assert (room.status, room.publishing, room.started_at, room.version) == before


def test_a_replay_moment_seeks_the_player(media, transactional_db, page, screenshot):
    room = make_room("lin")
    retailer = Retailer.objects.create(code="jdm-e2e", name="JD Mall")
    items = []
    for n, (title, price) in enumerate([("Smart kettle 1.7 L", "89.00"), ("Glass blender", "199.00")]):
        product = Product.objects.create(
            retailer=retailer, sku=f"E2E-{n}", title=title, list_price=Decimal(price) + 40, self_operated=True,
            sellable=True, retailer_stock=30,
        )  # fmt: skip
        items.append(ShelfItem.objects.create(room=room, product=product, live_price=Decimal(price), position=n))

    publisher = media.publish(room.stream_key, seconds=14)
    started = wait_for(lambda: room_now(room).started_at, timeout=15, what="the room to go live")
    PinEvent.objects.create(room=room, item=items[0], pinned_at=started + timedelta(seconds=2),
                            unpinned_at=started + timedelta(seconds=6))  # fmt: skip
    PinEvent.objects.create(room=room, item=items[1], pinned_at=started + timedelta(seconds=8),
                            unpinned_at=started + timedelta(seconds=12))  # fmt: skip
    assert publisher.wait(40) == 0, publisher.stderr.read().decode()[-500:]

    ended = wait_for(lambda: (r := room_now(room)).status == Room.Status.ENDED and r.replay_playlist and r,
                     timeout=20, what="on_publish_done to end the room with a replay")  # fmt: skip
    assert ended.publishing is False
    replay = media.hls_root / ended.replay_playlist
    wait_for(lambda: replay.read_text().count("#EXTINF") >= 5, timeout=10, what="the whole recording in the replay")
    assert replay.read_text().rstrip().endswith("#EXT-X-ENDLIST")

    page.goto(media.web.url + room.get_absolute_url())
    page.wait_for_function("() => window.roomPlayer && window.roomPlayer.mode === 'replay'", timeout=20_000)
    moments = page.locator("[data-moments] button")
    assert moments.count() == 2
    assert "Glass blender" in moments.nth(1).inner_text()

    moments.nth(1).focus()
    page.keyboard.press("Enter")  # keyboard works, not just a mouse
    page.wait_for_function(
        "() => { const v = document.querySelector('[data-player] video');"
        " return !v.seeking && v.currentTime >= 7.5 && v.currentTime <= 11; }",
        timeout=15_000,
    )
    page.wait_for_function("() => document.querySelector('[data-player]').dataset.state === 'playing'", timeout=10_000)
    assert moments.nth(1).get_attribute("aria-current") == "true"
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(600)
    screenshot("video-replay")

    moments.nth(0).click()
    page.wait_for_function(
        "() => { const v = document.querySelector('[data-player] video'); return !v.seeking && v.currentTime < 5; }",
        timeout=15_000,
    )
