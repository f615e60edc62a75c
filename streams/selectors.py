"""Reads for rooms: what the home page and room pages show."""

from django.db.models import QuerySet

from streams.models import Room


def rooms_live() -> QuerySet[Room]:
    return Room.objects.filter(status=Room.Status.LIVE).select_related("host__user").order_by("-started_at")


def rooms_upcoming() -> QuerySet[Room]:
    return Room.objects.filter(status=Room.Status.SCHEDULED).select_related("host__user").order_by("scheduled_start")


def rooms_replays() -> QuerySet[Room]:
    return Room.objects.filter(status=Room.Status.ENDED).select_related("host__user").order_by("-ended_at")
