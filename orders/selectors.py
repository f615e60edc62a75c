"""Reads for orders. Every order read is scoped to its buyer."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

from django.db.models import Count, Prefetch, QuerySet, Sum
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from orders import errors
from orders.models import FlashSale, Order, OrderEvent, OrderLine, ProductOpen, PurchaseAllowance, StockBucket
from streams.models import Room, ShelfItem

CONFIRMED = [
    Order.Status.PAID,
    Order.Status.SENT_TO_RETAILER,
    Order.Status.ACCEPTED,
    Order.Status.PACKED,
    Order.Status.SHIPPED,
    Order.Status.DELIVERED,
]


def order_list(*, user: User) -> QuerySet[Order]:
    return (
        Order.objects.filter(buyer=user)
        .select_related("room")
        .prefetch_related(Prefetch("lines", queryset=OrderLine.objects.only("id", "order_id", "title", "quantity")))
    )


def order_get(*, user: User, number: str) -> Order:
    """The buyer's own order, or 404: someone else's is indistinguishable from none."""
    order = (
        Order.objects.filter(buyer=user, number=number)
        .select_related("room", "room__host", "payment")
        .prefetch_related("lines", Prefetch("events", queryset=OrderEvent.objects.order_by("at", "id")))
        .first()
    )
    if order is None:
        raise Http404("No such order")
    return order


def stock_left(*, item_id: int, sale_id: int | None = None, default: int = 0) -> int:
    qs = (
        StockBucket.objects.filter(flash_sale__pk=sale_id)
        if sale_id
        else StockBucket.objects.filter(shelf_item_id=item_id, kind=StockBucket.Kind.REGULAR)
    )
    value = qs.values_list("available", flat=True).first()
    return default if value is None else value


def stock_for_room(*, room_id: int) -> dict[int, int]:
    """Units left per shelf item of the room (regular shelf stock)."""
    rows = StockBucket.objects.filter(shelf_item__room_id=room_id, kind=StockBucket.Kind.REGULAR)
    return dict(rows.values_list("shelf_item_id", "available"))


def flash_sales_for_room(*, room_id: int, now=None) -> list[dict]:
    """Sales a viewer's card should show: upcoming or running (and just-ended ones' ids)."""
    from orders import live

    now = now or timezone.now()
    sales = FlashSale.objects.filter(room_id=room_id, ends_at__gt=now).select_related("bucket").order_by("starts_at")
    return [live.flash_sale_payload(sale, now=now) for sale in sales]


@dataclass
class Quote:
    item: int
    sale: int | None
    title: str
    image: str
    quantity: int
    max_quantity: int
    currency: str
    unit_price: str
    list_price: str
    subtotal: str
    shipping: str
    discount: str
    total: str
    left: int
    hold_minutes: int

    def as_dict(self) -> dict:
        return asdict(self)


def order_quote(*, user: User, shelf_item_id, quantity=1, flash_sale_id=None, room_id: int | None = None) -> Quote:
    """The server's price breakdown for the buy sheet. Raises errors.OrderError."""
    from orders import services

    item_id = services._positive_int(shelf_item_id, what="product")
    quantity = services._positive_int(quantity, what="quantity", maximum=services.MAX_QUANTITY)
    sale_id = services._optional_id(flash_sale_id, what="flash sale")
    offer = services.resolve_offer(shelf_item_id=item_id, flash_sale_id=sale_id, room_id=room_id)
    held = (
        PurchaseAllowance.objects.filter(user=user, bucket=offer.bucket).values_list("units", flat=True).first() or 0
    )
    max_quantity = max(0, offer.per_user_limit - held)
    if max_quantity == 0:
        raise errors.LimitReached(f"You've already bought the limit of {offer.per_user_limit}.",
                                  limit=offer.per_user_limit)  # fmt: skip
    quantity = min(quantity, max_quantity)
    unit = offer.unit_price
    subtotal = unit * quantity
    list_total = offer.product.list_price * quantity
    image = offer.product.images.values_list("url", flat=True).first() or ""
    return Quote(
        item=item_id, sale=offer.sale.pk if offer.sale else None, title=offer.product.title, image=image,
        quantity=quantity, max_quantity=max_quantity, currency=offer.product.currency, unit_price=str(unit),
        list_price=str(offer.product.list_price), subtotal=str(subtotal), shipping="0.00",
        discount=str(max(Decimal("0.00"), list_total - subtotal)), total=str(subtotal),
        left=StockBucket.objects.filter(pk=offer.bucket.pk).values_list("available", flat=True).first() or 0,
        hold_minutes=offer.hold_minutes,
    )  # fmt: skip


def room_sales(*, room_id: int) -> dict:
    """The host's live figures: orders, units, GMV, and per product opens, buyers, conversion."""
    confirmed = OrderLine.objects.filter(order__room_id=room_id, order__status__in=CONFIRMED)
    totals = Order.objects.filter(room_id=room_id, status__in=CONFIRMED).aggregate(
        orders=Count("id"), gmv=Sum("total"), commission=Sum("commission_total")
    )
    units = confirmed.aggregate(units=Sum("quantity"))["units"] or 0
    per_item = {
        row["shelf_item_id"]: row
        for row in confirmed.values("shelf_item_id").annotate(
            units=Sum("quantity"), buyers=Count("order__buyer", distinct=True), gmv=Sum("line_total")
        )
    }
    opened_by: dict[int, set[int]] = {}
    for item_id, user_id in ProductOpen.objects.filter(room_id=room_id).values_list("shelf_item_id", "user_id"):
        opened_by.setdefault(item_id, set()).add(user_id)
    bought_by: dict[int, set[int]] = {}
    for item_id, user_id in confirmed.values_list("shelf_item_id", "order__buyer_id").distinct():
        bought_by.setdefault(item_id, set()).add(user_id)
    products = []
    for item in ShelfItem.objects.filter(room_id=room_id).select_related("product").order_by("position", "id"):
        row = per_item.get(item.pk, {})
        opened = opened_by.get(item.pk, set())
        converted = len(opened & bought_by.get(item.pk, set()))
        products.append({
            "item": item.pk,
            "title": item.product.title,
            "opened": len(opened),
            "buyers": row.get("buyers", 0),
            "units": row.get("units", 0),
            "gmv": str(row.get("gmv") or Decimal("0.00")),
            # of the viewers who opened the product's buy sheet, the share who bought it
            "conversion": round(100 * converted / len(opened), 1) if opened else 0.0,
        })  # fmt: skip
    return {
        "room": room_id,
        "orders": totals["orders"] or 0,
        "units": units,
        "gmv": str(totals["gmv"] or Decimal("0.00")),
        "commission": str(totals["commission"] or Decimal("0.00")),
        "products": products,
    }


def room_for_host(*, user: User, room_id: int) -> Room:
    room = Room.objects.select_related("host").filter(pk=room_id).first()
    if room is None or not user.is_authenticated or (room.host.user_id != user.pk and not user.is_staff):
        raise Http404("No such room")
    return room


def addresses_for_sheet(*, user: User) -> list[dict]:
    from accounts.models import Address

    return [
        {"id": a.pk, "recipient": a.recipient, "line": a.one_line, "phone": a.phone, "default": a.is_default}
        for a in Address.objects.filter(user=user)
    ]


def room_offers(*, room_id: int) -> dict:
    """What every viewer may see: units left per shelf item and the room's flash sales."""
    return {"stock": {str(k): v for k, v in stock_for_room(room_id=room_id).items()},
            "flash_sales": flash_sales_for_room(room_id=room_id)}  # fmt: skip
