from django.shortcuts import get_object_or_404, render

from streams import selectors
from streams.models import Room


def home(request):
    return render(
        request,
        "streams/home.html",
        {
            "live": selectors.rooms_live()[:24],
            "upcoming": selectors.rooms_upcoming()[:24],
            "replays": selectors.rooms_replays()[:24],
        },
    )


def room(request, pk: int):
    room = get_object_or_404(Room.objects.select_related("host__user"), pk=pk)
    return render(request, "streams/room.html", {"room": room})
