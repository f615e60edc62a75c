"""Test data built with the real models (and services where a rule lives in one)."""

import itertools
from decimal import Decimal

from django.utils import timezone

from accounts.models import Address, HostProfile, User
from catalog.models import Product, Retailer
from streams.models import Room, ShelfItem

_seq = itertools.count(1)

CARD_OK = "4242 4242 4242 4242"
CARD_DECLINE = "4000 0000 0000 0002"
CARD_CONFIRM = "4000 0000 0000 3220"


def user(name: str | None = None, **extra) -> User:
    n = next(_seq)
    return User.objects.create_user(username=name or f"buyer{n}", password="pw-12345678", **extra)


def address(owner: User, **extra) -> Address:
    fields = {"recipient": "Wang Fang", "phone": "+86 138 0000 0000", "province": "Zhejiang", "city": "Hangzhou",
              "district": "Xihu", "line": "18 Wensan Road", "postal_code": "310000"}  # fmt: skip
    fields.update(extra)
    return Address.objects.create(user=owner, **fields)


def host(name: str | None = None) -> HostProfile:
    owner = user(name)
    return HostProfile.objects.create(user=owner, handle=f"h-{owner.username}", status=HostProfile.Status.APPROVED)


def product(stock: int = 100, price: str = "199.00", **extra) -> Product:
    retailer, _ = Retailer.objects.get_or_create(code="jdm", defaults={"name": "JD Mall"})
    n = next(_seq)
    fields = {"retailer": retailer, "sku": f"SKU-{n}", "title": f"Wireless earbuds {n}", "brand": "Sonic",
              "list_price": Decimal(price), "self_operated": True, "sellable": True,
              "retailer_stock": stock}  # fmt: skip
    fields.update(extra)
    return Product.objects.create(**fields)


def room(status: str = Room.Status.LIVE, host_profile: HostProfile | None = None) -> Room:
    return Room.objects.create(
        host=host_profile or host(), title="Evening deals", scheduled_start=timezone.now(), status=status
    )


def shelf_item(
    stock: int = 100, live_price: str = "149.00", limit: int = 5, room_obj: Room | None = None, **product_extra
) -> ShelfItem:
    room_obj = room_obj or room()
    prod = product(stock=stock, **product_extra)
    return ShelfItem.objects.create(room=room_obj, product=prod, live_price=Decimal(live_price), per_user_limit=limit)
