import secrets

from django.conf import settings
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
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scheduled_start"]
        indexes = [models.Index(fields=["status", "scheduled_start"])]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("streams:room", args=[self.pk])


class Follow(models.Model):
    """A viewer follows a host and is told in-app when the host goes live."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="follows")
    host = models.ForeignKey("accounts.HostProfile", on_delete=models.CASCADE, related_name="followers")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "host"], name="follow_once")]

    def __str__(self):
        return f"{self.user} follows {self.host}"
