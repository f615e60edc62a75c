"""Demo rooms for `seed_demo`."""

from datetime import timedelta

from django.utils import timezone

from accounts.models import HostProfile
from streams.models import Room


def seed_rooms(*, host: HostProfile) -> list[Room]:
    rooms = []
    for title, hours in [
        ("Friday kitchen gadgets: live deals", 2),
        ("Phone week: flagships compared", 26),
    ]:
        room, _ = Room.objects.get_or_create(
            host=host,
            title=title,
            defaults={
                "scheduled_start": timezone.now() + timedelta(hours=hours),
                "description": "Real products from our partner retailer, live prices, flash sales.",
            },
        )
        rooms.append(room)
    return rooms
