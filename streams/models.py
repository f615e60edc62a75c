"""Live rooms: the room, its shelf, the pin history, chat and moderation."""

import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse


def new_stream_key() -> str:
    return "sk_" + secrets.token_urlsafe(24)


class Room(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Starting soon"
        LIVE = "live", "Live"
        ENDED = "ended", "Ended"

    host = models.ForeignKey("accounts.HostProfile", on_delete=models.PROTECT, related_name="rooms")
    title = models.CharField(max_length=120)
    description = models.CharField(max_length=500, blank=True)
    cover = models.ImageField(upload_to="covers/", blank=True)
    scheduled_start = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED, db_index=True)
    stream_key = models.CharField(max_length=64, unique=True, default=new_stream_key, editable=False)
    # True while an encoder (OBS, ffmpeg) is publishing to the media server.
    publishing = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # The room's state version: bumped by every change a viewer's snapshot shows.
    version = models.PositiveBigIntegerField(default=0)
    pinned_item = models.ForeignKey("ShelfItem", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    slow_mode_seconds = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(300)])
    peak_viewers = models.PositiveIntegerField(default=0)
    likes = models.PositiveBigIntegerField(default=0)
    # HLS playlist (relative to settings.HLS_URL) that plays the recording once the room ends.
    replay_playlist = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scheduled_start"]
        indexes = [models.Index(fields=["status", "scheduled_start"])]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("streams:room", args=[self.pk])


class ShelfItem(models.Model):
    """A product on a room's shelf at the room's live price."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="shelf")
    product = models.ForeignKey("catalog.Product", on_delete=models.PROTECT, related_name="shelf_items")
    live_price = models.DecimalField(max_digits=12, decimal_places=2)
    position = models.PositiveSmallIntegerField(default=0)
    per_user_limit = models.PositiveSmallIntegerField(default=5, validators=[MinValueValidator(1)])
    # Removed items stay for replays and orders that refer to them.
    is_active = models.BooleanField(default=True)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["room", "product"], name="product_once_per_shelf")]

    def __str__(self):
        return f"{self.product} @ {self.live_price}"


class PinEvent(models.Model):
    """When the host showed a product: kept so a replay can seek to it."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="pins")
    item = models.ForeignKey(ShelfItem, on_delete=models.CASCADE, related_name="pins")
    pinned_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    pinned_at = models.DateTimeField()
    unpinned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pinned_at"]

    def __str__(self):
        return f"{self.item} pinned at {self.pinned_at:%H:%M:%S}"


class ChatMessage(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    text = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["room", "created_at"])]

    def __str__(self):
        return self.text[:40]


class RoomModerator(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="moderators")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="moderator_once")]

    def __str__(self):
        return f"{self.user} moderates {self.room}"


class RoomBan(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="bans")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    banned_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="ban_once")]

    def __str__(self):
        return f"{self.user} banned from {self.room}"


class RoomMute(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="mutes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    until = models.DateTimeField()
    muted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="mute_once")]

    def __str__(self):
        return f"{self.user} muted in {self.room} until {self.until:%H:%M}"


class Follow(models.Model):
    """A viewer follows a host and is told in-app when the host goes live."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="follows")
    host = models.ForeignKey("accounts.HostProfile", on_delete=models.CASCADE, related_name="followers")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "host"], name="follow_once")]

    def __str__(self):
        return f"{self.user} follows {self.host}"


class Notification(models.Model):
    class Kind(models.TextChoices):
        HOST_LIVE = "host_live", "Host went live"
        ORDER = "order", "Order update"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    room = models.ForeignKey(Room, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    text = models.CharField(max_length=200)
    url = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "read_at"])]

    def __str__(self):
        return self.text
