"""Replays: the recording of an ended room and its product moments.

A product moment is one time the host pinned a product during the show; in the replay
it seeks the player to when that product was shown. Offsets count from the recording's
start, which is when the room went live (`started_at`: the media server's on_publish).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Prefetch

from catalog.models import ProductImage
from streams import media
from streams.models import PinEvent, Room, ShelfItem


@dataclass(frozen=True)
class ProductMoment:
    pin_id: int
    item: ShelfItem
    title: str
    brand: str
    image: str
    live_price: Decimal
    list_price: Decimal
    currency: str
    product_url: str
    offset: int  # whole seconds from the start of the recording
    shown_for: int | None  # seconds the product stayed pinned, when known

    @property
    def label(self) -> str:
        """The offset as a clock a viewer reads: 4:05, 1:02:09."""
        hours, rest = divmod(self.offset, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def product_moments(*, room: Room) -> list[ProductMoment]:
    """Every pin of the show, in order, with its offset into the recording (never negative)."""
    if room.started_at is None:
        return []
    pins = (
        PinEvent.objects.filter(room_id=room.pk)
        .select_related("item__product")
        .prefetch_related(Prefetch("item__product__images", queryset=ProductImage.objects.order_by("position", "id")))
        .order_by("pinned_at", "id")
    )
    moments = []
    for pin in pins:
        product = pin.item.product
        images = list(product.images.all())
        offset = max(0, int((pin.pinned_at - room.started_at).total_seconds()))
        shown_for = None
        if pin.unpinned_at is not None:
            shown_for = max(0, int((pin.unpinned_at - pin.pinned_at).total_seconds()))
        moments.append(
            ProductMoment(
                pin_id=pin.pk,
                item=pin.item,
                title=product.title,
                brand=product.brand,
                image=images[0].url if images else "",
                live_price=pin.item.live_price,
                list_price=product.list_price,
                currency=product.currency,
                product_url=product.get_absolute_url(),
                offset=offset,
                shown_for=shown_for,
            )
        )
    return moments


def player_config(*, room: Room) -> dict:
    """What static/streams/player.js needs to know about a room (rendered as JSON)."""
    return {
        "room": room.pk,
        "status": room.status,
        "publishing": room.publishing,
        "liveUrl": media.hls_url(media.live_playlist_path(room)),
        "replayUrl": media.hls_url(room.replay_playlist) if room.replay_playlist else "",
        # Where the replay will appear once the recorder closes: tried when the room ends
        # while the page is open.
        "replayCandidate": media.hls_url(media.replay_playlist_path(room)),
        "scheduledStart": room.scheduled_start.isoformat() if room.scheduled_start else None,
    }
