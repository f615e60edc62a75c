"""Demo rooms for `seed_demo`: one live room with a shelf and a pinned product, one upcoming."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from accounts.models import HostProfile
from catalog.models import Product
from streams import services
from streams.models import Room


def _demo_price(product: Product) -> Decimal:
    """About 15% off the list price, never below the staff floor."""
    price = (product.list_price * Decimal("0.85")).quantize(Decimal("1")) - Decimal("0.01")
    return max(price, product.live_price_floor)


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
    live = rooms[0]
    if host.is_approved and live.status == Room.Status.SCHEDULED and not live.shelf.exists():
        products = Product.objects.filter(sellable=True, self_operated=True, in_feed=True).order_by("id")[:5]
        for product in products:
            services.shelf_add(room=live, product_id=product.pk, live_price=_demo_price(product), by=host.user)
        live = services.room_go_live(room=live)
        first = live.shelf.order_by("position").first()
        if first is not None:
            services.room_pin(room=live, item_id=first.pk, by=host.user)
    return rooms
