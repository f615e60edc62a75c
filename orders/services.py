"""Writes for orders: place, pay, confirm, expire, cancel, callbacks, flash sales.

Rules every function here keeps (see docs/orders.md):

* Prices and totals come from the database, never from the caller.
* Stock leaves a bucket only through `_stock_take`: ONE conditional UPDATE
  (`... WHERE id = %s AND available >= %s`). Rows are locked in one order everywhere:
  order → purchase allowance → stock buckets (by id).
* The payment gateway is called with no transaction open and no lock held.
* Every status change goes through `orders.state.transition` (one audit row each).
* Broadcasts and task queueing happen in `transaction.on_commit`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Subquery, Sum, prefetch_related_objects
from django.utils import timezone

import inbound
from accounts.models import Address, User
from catalog.models import Product
from orders import errors, live
from orders.models import (
    FlashSale,
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    PaymentCallback,
    ProductOpen,
    StockBucket,
)
from orders.payments import Card, ChargeResult, get_gateway, parse_card, sign
from orders.state import RELEASING, record_created, transition
from streams.models import Notification, Room, ShelfItem

S = Order.Status
CENT = Decimal("0.01")
MAX_QUANTITY = 99
KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")
NUMBER_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CALLBACK_TOLERANCE_SECONDS = 300
CALLBACK_MAX_BYTES = 4096
SETTLE_WAIT_SECONDS = 10.0


def reservation_minutes() -> int:
    return int(getattr(settings, "ORDERS_RESERVATION_MINUTES", 10))


# --- input cleaning ----------------------------------------------------------------------


def _positive_int(value, *, what: str, maximum: int = 2**31 - 1) -> int:
    if isinstance(value, bool):
        raise errors.InvalidRequest(f"The {what} is not valid.")
    # ASCII digits only, and few of them: str.isdigit() accepts "²" and "٣", which int()
    # refuses, and int() refuses strings of more than 4,300 digits.
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,12}", value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or not 1 <= value <= maximum:
        raise errors.InvalidRequest(f"The {what} is not valid.")
    return value


def _optional_id(value, *, what: str) -> int | None:
    return None if value in (None, "") else _positive_int(value, what=what)


def _money(value) -> Decimal:
    try:
        amount = Decimal(str(value)).quantize(CENT)
    except (InvalidOperation, ValueError, TypeError):
        raise errors.InvalidRequest("That price is not a number.")
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e10"):
        raise errors.InvalidRequest("That price is not valid.")
    return amount


def _clean_key(value) -> str:
    if not isinstance(value, str) or not KEY_RE.match(value):
        raise errors.InvalidRequest("Missing or malformed idempotency key (8-64 letters, digits, _ . : -).")
    return value


def _fingerprint(**fields) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def buy_fingerprint(*, shelf_item_id: int, quantity: int, address_id: int | None, flash_sale_id: int | None,
                    card: Card | None, payment_method) -> str:  # fmt: skip
    """What a replay of the same idempotency key must repeat (the card as a hash)."""
    return _fingerprint(
        item=shelf_item_id, qty=quantity, address=address_id, sale=flash_sale_id,
        card=card.fingerprint if card else (None if payment_method in (None, "") else "invalid"),
    )  # fmt: skip


def _new_number(now: datetime) -> str:
    n, tail = secrets.randbelow(len(NUMBER_ALPHABET) ** 6), ""  # one draw, not six (a flash sale makes thousands)
    for _ in range(6):
        n, digit = divmod(n, len(NUMBER_ALPHABET))
        tail += NUMBER_ALPHABET[digit]
    return f"LM{now:%y%m}-{tail}"


# --- what is on offer --------------------------------------------------------------------


RESERVED_PAYING = "Reserved for you. Taking the payment…"
RESERVED_UNPAID = "Reserved for you. Pay to confirm the order."


@dataclass
class Offer:
    item: ShelfItem
    room: Room
    product: Product
    sale: FlashSale | None
    bucket: StockBucket
    unit_price: Decimal
    per_user_limit: int
    hold_minutes: int


def regular_bucket(item: ShelfItem) -> StockBucket:
    """The room's stock of a shelf item, opened on first need from the catalog's stock.

    Rule: a room may sell the retailer's stock as the feed reported it when the bucket was
    opened, minus the units other rooms that have not ended still hold for the same
    product (available + reserved). The product row is locked while this is worked out,
    so two rooms opening buckets at once cannot both take the same units.
    """
    bucket = StockBucket.objects.filter(shelf_item_id=item.pk, kind=StockBucket.Kind.REGULAR).first()
    if bucket is not None:
        return bucket
    with transaction.atomic():
        product = Product.objects.select_for_update().get(pk=item.product_id)
        bucket = StockBucket.objects.filter(shelf_item_id=item.pk, kind=StockBucket.Kind.REGULAR).first()
        if bucket is not None:
            return bucket
        held = (
            StockBucket.objects.filter(shelf_item__product_id=product.pk)
            .exclude(shelf_item__room_id=item.room_id)
            .exclude(shelf_item__room__status=Room.Status.ENDED)
            .aggregate(units=Sum(F("available") + F("reserved")))["units"]
            or 0
        )
        units = max(0, product.retailer_stock - held)
        return StockBucket.objects.create(
            kind=StockBucket.Kind.REGULAR, shelf_item=item, initial=units, available=units
        )


def running_sale(item_id: int, now: datetime) -> FlashSale | None:
    return (
        FlashSale.objects.filter(shelf_item_id=item_id, starts_at__lte=now, ends_at__gt=now)
        .select_related("bucket")
        .first()
    )


def resolve_offer(
    *, shelf_item_id: int, flash_sale_id: int | None, now: datetime | None = None, room_id: int | None = None
) -> Offer:
    """The price and stock a buyer gets right now, or the shopper-friendly reason why not."""
    now = now or timezone.now()
    item = (
        ShelfItem.objects.select_related("room", "product", "product__category", "product__retailer")
        .filter(pk=shelf_item_id)
        .first()
    )
    if item is None or (room_id is not None and item.room_id != room_id):
        raise errors.NotFound("That product isn't in this room.")
    room = item.room
    if room.status == Room.Status.ENDED:
        raise errors.RoomEnded()
    if room.status != Room.Status.LIVE:
        raise errors.RoomNotLive()
    if not item.is_active or not item.product.can_be_sold_live:
        raise errors.NotAvailable()
    if flash_sale_id is not None:
        sale = FlashSale.objects.select_related("bucket").filter(pk=flash_sale_id, shelf_item_id=item.pk).first()
        if sale is None:
            raise errors.NotFound("That flash sale isn't in this room.")
        if now < sale.starts_at:
            raise errors.SaleNotStarted(
                f"The flash sale starts at {timezone.localtime(sale.starts_at):%H:%M:%S}.",
                starts_at=sale.starts_at.isoformat(),
            )
        if now >= sale.ends_at:
            raise errors.SaleOver()
    else:
        sale = running_sale(item.pk, now)
    if sale is not None:
        return Offer(item, room, item.product, sale, sale.bucket, sale.sale_price, sale.per_user_limit,
                     sale.reservation_minutes)  # fmt: skip
    return Offer(item, room, item.product, None, regular_bucket(item), item.live_price, item.per_user_limit,
                 reservation_minutes())  # fmt: skip


# --- the stock gate ----------------------------------------------------------------------


def _stock_take(*, bucket_id: int, quantity: int) -> int | None:
    """THE stock gate: one atomic conditional UPDATE. Units left, or None if too few."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE orders_stockbucket SET available = available - %s, reserved = reserved + %s, updated_at = %s "
            "WHERE id = %s AND available >= %s RETURNING available",
            [quantity, quantity, timezone.now(), bucket_id, quantity],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


def _allowance_take(*, user_id: int, bucket_id: int, quantity: int, limit: int) -> bool:
    """Count `quantity` against the buyer's per-user limit, atomically. False if over."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO orders_purchaseallowance (user_id, bucket_id, units) VALUES (%s, %s, %s) "
            "ON CONFLICT (user_id, bucket_id) DO UPDATE SET units = orders_purchaseallowance.units + excluded.units "
            "WHERE orders_purchaseallowance.units + excluded.units <= %s RETURNING units",
            [user_id, bucket_id, quantity, limit],
        )
        return cursor.fetchone() is not None


def _move_units(order: Order, *, source: str, target: str, free_allowance: bool) -> None:
    """Move each line's units from one bucket column to another (`available`, `reserved`,
    `sold`), buckets in id order; with `free_allowance` they stop counting against the
    buyer's per-user limit. A bucket holding fewer units than the line is a broken ledger:
    raise, so the caller's transaction changes nothing."""
    for line in sorted(order.lines.all(), key=lambda ln: ln.bucket_id):
        if free_allowance:
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE orders_purchaseallowance SET units = units - %s WHERE user_id = %s AND bucket_id = %s",
                    [line.quantity, order.buyer_id, line.bucket_id],
                )
        moved = StockBucket.objects.filter(pk=line.bucket_id, **{f"{source}__gte": line.quantity}).update(
            **{source: F(source) - line.quantity, target: F(target) + line.quantity}, updated_at=timezone.now()
        )
        if moved != 1:
            raise RuntimeError(f"bucket {line.bucket_id} holds fewer {source} units than order {order.pk}")


def _release_lines(order: Order) -> None:
    """Reserved units go back on sale and stop counting against the buyer's limit."""
    _move_units(order, source="reserved", target="available", free_allowance=True)


def _confirm_lines(order: Order) -> None:
    _move_units(order, source="reserved", target="sold", free_allowance=False)


def _unsell_lines(order: Order) -> None:
    """A paid order cancelled before the hand-off: its units go back on sale."""
    _move_units(order, source="sold", target="available", free_allowance=True)


# --- placing an order --------------------------------------------------------------------


@dataclass
class PlaceResult:
    ok: bool
    code: str
    message: str
    order: Order | None = None
    replayed: bool = False
    extra: dict = field(default_factory=dict)
    lines: list | None = None  # the order's lines when already in hand (no query)
    pay_with: Card | None = None  # defer_payment: the caller pays with it next (order_pay_reserved)

    def as_dict(self) -> dict:
        """The buyer's answer. Identical for every replay of the same idempotency key."""
        return {
            "ok": self.ok,
            "code": self.code,
            "message": self.message,
            "order": live.order_summary(self.order, lines=self.lines) if self.order is not None else None,
            **self.extra,
        }


def _answer(order: Order, *, replayed: bool = False) -> PlaceResult:
    order = Order.objects.select_related("payment").prefetch_related("lines").get(pk=order.pk)
    payment = getattr(order, "payment", None)
    if order.status == S.PENDING_PAYMENT:
        if payment is not None and payment.status == Payment.Status.REQUIRES_CONFIRMATION:
            return PlaceResult(True, "awaiting_confirmation",
                               "Waiting for your bank to confirm the payment. Your items are reserved.",
                               order, replayed)  # fmt: skip
        if payment is not None and payment.status == Payment.Status.PROCESSING:
            return PlaceResult(True, "processing", "Your payment is being processed.", order, replayed)
        return PlaceResult(True, "reserved", RESERVED_UNPAID, order, replayed)
    if order.status == S.PAYMENT_FAILED:
        message = errors.PaymentDeclined.message
        return PlaceResult(False, errors.PaymentDeclined.code, message, order, replayed)
    if order.status == S.EXPIRED:
        return PlaceResult(False, errors.ReservationExpired.code, errors.ReservationExpired.message, order, replayed)
    if order.status == S.CANCELLED:
        return PlaceResult(False, "cancelled", "This order was cancelled.", order, replayed)
    return PlaceResult(True, "paid", "Order confirmed! We'll let you know when it ships.", order, replayed)


def _wait_settled(order_id: int) -> None:
    """A duplicate request waits (briefly) for the first one's payment to get its answer."""
    deadline = time.monotonic() + SETTLE_WAIT_SECONDS
    while time.monotonic() < deadline:
        if not Payment.objects.filter(order_id=order_id, status=Payment.Status.PROCESSING).exists():
            return
        time.sleep(0.05)


def _replay(order: Order, *, fingerprint: str, card: Card | None, user: User, defer: bool = False) -> PlaceResult:
    if order.request_fingerprint != fingerprint:
        raise errors.IdempotencyConflict()
    if defer:  # the first request pays; a replay reports where the order stands now
        return _answer(order, replayed=True)
    if card is not None and order.status == S.PENDING_PAYMENT and not Payment.objects.filter(order=order).exists():
        _pay(order_id=order.pk, card=card, actor=user)
    _wait_settled(order.pk)
    return _answer(order, replayed=True)


def order_place(
    *,
    user: User,
    shelf_item_id,
    quantity,
    address_id,
    payment_method,
    idempotency_key,
    flash_sale_id=None,
    expected_unit_price=None,
    room_id: int | None = None,
    defer_payment: bool = False,
) -> PlaceResult:
    """Reserve stock, create the order and (with a payment method) pay for it.

    Errors in the buyer's words are raised as `errors.OrderError`; a decline or an
    expired reservation is an answer (`ok=False`) about an order that exists.

    `defer_payment=True` (the room socket) answers as soon as the stock is reserved, with
    code "processing" and `pay_with` set; the caller then calls `order_pay_reserved`
    outside its request path and tells the buyer the outcome.
    """
    key = _clean_key(idempotency_key)
    shelf_item_id = _positive_int(shelf_item_id, what="product")
    quantity = _positive_int(quantity, what="quantity", maximum=MAX_QUANTITY)
    address_id = _optional_id(address_id, what="address")
    flash_sale_id = _optional_id(flash_sale_id, what="flash sale")
    card = parse_card(payment_method) if payment_method not in (None, "") else None
    fingerprint = buy_fingerprint(shelf_item_id=shelf_item_id, quantity=quantity, address_id=address_id,
                                  flash_sale_id=flash_sale_id, card=card, payment_method=payment_method)  # fmt: skip

    # The crowd's answer once stock is gone: one indexed read, no transaction, no lock.
    existing_id, left = _stock_precheck(user_id=user.pk, key=key, shelf_item_id=shelf_item_id,
                                        flash_sale_id=flash_sale_id, room_id=room_id)  # fmt: skip
    if existing_id is not None:
        existing = Order.objects.get(pk=existing_id)
        return _replay(existing, fingerprint=fingerprint, card=card, user=user, defer=defer_payment)
    if left is not None and left < quantity:
        raise _sold_out(left)

    if payment_method not in (None, "") and card is None:
        raise errors.CardInvalid()
    address = Address.objects.filter(pk=address_id, user=user).first() if address_id else None
    if address is None:
        raise errors.AddressInvalid()
    if not all((address.recipient, address.phone, address.province, address.city, address.line)):
        raise errors.AddressInvalid("That address is incomplete. Please edit it or choose another.")

    offer = resolve_offer(shelf_item_id=shelf_item_id, flash_sale_id=flash_sale_id, room_id=room_id)
    if expected_unit_price not in (None, "") and _money(expected_unit_price) != offer.unit_price:
        raise errors.PriceChanged(
            f"The price changed to ¥{offer.unit_price}. Check it and confirm again.",
            new_price=str(offer.unit_price),
        )
    if quantity > offer.per_user_limit:
        raise errors.LimitReached(f"You can buy at most {offer.per_user_limit} of these.", limit=offer.per_user_limit)
    if offer.bucket.available < quantity:
        raise _sold_out(offer.bucket.available)

    try:
        order, line = _reserve(user=user, offer=offer, quantity=quantity, address=address, key=key,
                               fingerprint=fingerprint, card=card)  # fmt: skip
    except IntegrityError:
        existing = _order_for_key(user_id=user.pk, key=key)
        if existing is None:
            raise
        return _replay(existing, fingerprint=fingerprint, card=card, user=user, defer=defer_payment)

    if defer_payment:
        if card is not None:
            return PlaceResult(True, "processing", RESERVED_PAYING, order, lines=[line], pay_with=card)
        return PlaceResult(True, "reserved", RESERVED_UNPAID, order, lines=[line])
    if card is not None:
        _pay(order_id=order.pk, card=card, actor=user)
        _wait_settled(order.pk)
    return _answer(order)


def order_pay_reserved(*, order_id: int, card: Card) -> PlaceResult:
    """Second half of a deferred buy: pay for the order just reserved and give the answer."""
    order = Order.objects.select_related("buyer").get(pk=order_id)
    _pay(order_id=order.pk, card=card, actor=order.buyer)
    _wait_settled(order.pk)
    return _answer(order)


def _order_for_key(*, user_id: int, key: str) -> Order | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM orders_order WHERE buyer_id = %s AND idempotency_key = %s", [user_id, key])
        row = cursor.fetchone()
    return None if row is None else Order.objects.get(pk=row[0])


_PRECHECK_SQL = (
    "SELECT (SELECT o.id FROM orders_order o WHERE o.buyer_id = %s AND o.idempotency_key = %s), "
    "(SELECT COALESCE((SELECT fb.available FROM orders_flashsale s JOIN orders_stockbucket fb ON fb.id = s.bucket_id "
    "WHERE s.shelf_item_id = i.id AND s.starts_at <= %s AND s.ends_at > %s {sale} ORDER BY s.starts_at LIMIT 1), "
    "{fallback}) FROM streams_shelfitem i JOIN streams_room r ON r.id = i.room_id "
    "WHERE i.id = %s AND i.is_active AND r.status = 'live' {room})"
)
_PRECHECK_SHELF = (
    "(SELECT rb.available FROM orders_stockbucket rb WHERE rb.shelf_item_id = i.id AND rb.kind = 'regular')"
)


def precheck_query(*, user_id: int, key: str, shelf_item_id: int, flash_sale_id: int | None,
                   room_id: int | None) -> tuple[str, list]:  # fmt: skip
    """ONE read answering (the order id already placed with this key, units left for what this
    buyer would get). Units are None unless the room is live and the item on sale: then the
    full checks must speak, with the precise reason. Run by `_stock_precheck` and, without a
    thread hop, by `orders.fastpath` on the room socket."""
    now = timezone.now()
    params: list = [user_id, key, now, now]
    if flash_sale_id is None:  # a running sale on the item wins over the shelf
        sale, fallback = "", _PRECHECK_SHELF
    else:
        sale, fallback = "AND s.id = %s", "NULL"
        params.append(flash_sale_id)
    params.append(shelf_item_id)
    room = ""
    if room_id is not None:
        room = "AND i.room_id = %s"
        params.append(room_id)
    return _PRECHECK_SQL.format(sale=sale, fallback=fallback, room=room), params


# What the Redis gate's counter is seeded from (`orders.gate`).
BUCKET_AVAILABLE_SQL = "SELECT available FROM orders_stockbucket WHERE id = %s"
# A flash-sale refusal from the Redis gate, confirmed for every refused buyer waiting in a
# process at once: the units left if the sale is open to buyers (room live, item on the
# shelf, inside the sale's window; else NULL), and which of the buyers already have an
# order under their key (1-based positions: a replay gets its order, not a refusal).
SOLD_OUT_CONFIRM_SQL = (
    "SELECT (SELECT fb.available FROM orders_flashsale s JOIN orders_stockbucket fb ON fb.id = s.bucket_id "
    "JOIN streams_shelfitem i ON i.id = s.shelf_item_id JOIN streams_room r ON r.id = i.room_id "
    "WHERE s.id = %(sale)s AND i.id = %(item)s AND i.room_id = %(room)s AND i.is_active AND r.status = 'live' "
    "AND s.starts_at <= %(now)s AND s.ends_at > %(now)s), "
    "ARRAY(SELECT k.n FROM unnest(%(users)s::bigint[], %(keys)s::text[]) WITH ORDINALITY AS k(u, key, n) "
    "WHERE EXISTS (SELECT 1 FROM orders_order o WHERE o.buyer_id = k.u AND o.idempotency_key = k.key))"
)


def _stock_precheck(*, user_id: int, key: str, shelf_item_id: int, flash_sale_id: int | None,
                    room_id: int | None = None) -> tuple[int | None, int | None]:  # fmt: skip
    sql, params = precheck_query(user_id=user_id, key=key, shelf_item_id=shelf_item_id,
                                 flash_sale_id=flash_sale_id, room_id=room_id)  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _sold_out(left: int) -> errors.SoldOut:
    if left > 0:
        return errors.SoldOut(f"Only {left} left. Lower the quantity to buy.", left=left)
    return errors.SoldOut(left=0)


def _reserve(*, user: User, offer: Offer, quantity: int, address: Address, key: str, fingerprint: str,
             card: Card | None) -> tuple[Order, OrderLine]:  # fmt: skip
    now = timezone.now()
    product = offer.product
    subtotal = (offer.unit_price * quantity).quantize(CENT)
    list_total = (product.list_price * quantity).quantize(CENT)
    rate = product.effective_commission_rate
    commission = (subtotal * rate).quantize(CENT)
    shipping = Decimal("0.00")
    order = Order(
        number=_new_number(now), buyer=user, room=offer.room, status=S.PENDING_PAYMENT,
        currency=product.currency, subtotal=subtotal, shipping=shipping,
        discount=max(Decimal("0.00"), list_total - subtotal), total=subtotal + shipping,
        commission_total=commission, address=address.as_snapshot(),
        payment_label=card.label if card else "", idempotency_key=key, request_fingerprint=fingerprint,
        expires_at=now + timedelta(minutes=offer.hold_minutes), created_at=now, updated_at=now,
    )  # fmt: skip
    line = OrderLine(
        order=order, shelf_item=offer.item, product=product, flash_sale=offer.sale, bucket=offer.bucket,
        title=product.title, sku=product.sku, unit_price=offer.unit_price, list_price=product.list_price,
        quantity=quantity, line_total=subtotal, commission_rate=rate, commission_amount=commission,
    )  # fmt: skip
    limit_message = f"You can buy at most {offer.per_user_limit} of these, and you already hold some."
    with transaction.atomic():
        if connection.vendor == "postgresql":
            _queue_same_key(user_id=user.pk, key=key)
            left = _reserve_in_one_statement(order=order, line=line, limit=offer.per_user_limit, now=now)
            if left == "limit":
                raise errors.LimitReached(limit_message, limit=offer.per_user_limit)
        else:  # the embedded default (SQLite): the same steps, one statement each
            order.save(force_insert=True)
            line.order = order
            line.save(force_insert=True)
            record_created(order=order, actor=user)
            if not _allowance_take(user_id=user.pk, bucket_id=offer.bucket.pk, quantity=quantity,
                                   limit=offer.per_user_limit):  # fmt: skip
                raise errors.LimitReached(limit_message, limit=offer.per_user_limit)
            left = _stock_take(bucket_id=offer.bucket.pk, quantity=quantity)
        if left is None:
            current = StockBucket.objects.filter(pk=offer.bucket.pk).values_list("available", flat=True).first()
            raise _sold_out(current or 0)
        sold_out_now = False
        if left == 0 and offer.sale is not None:
            sold_out_now = bool(
                FlashSale.objects.filter(pk=offer.sale.pk, sold_out_at__isnull=True).update(sold_out_at=now)
            )
        room_id, item_id, sale_id = offer.room.pk, offer.item.pk, offer.sale.pk if offer.sale else None
        transaction.on_commit(lambda: live.stock_changed(room_id=room_id, item_id=item_id, sale_id=sale_id, left=left))
        if sold_out_now:
            transaction.on_commit(lambda: live.flash_sold_out(room_id=room_id, sale_id=sale_id))
    return order, line


# One round trip on PostgreSQL: the buyer's allowance, THE stock gate (the conditional
# UPDATE), then the order, its line and its first audit row, only if both passed. Locks are
# taken in the fixed order allowance -> bucket -> order's unique key. The caller's
# transaction rolls everything back when a step refused.
_RESERVE_SQL = """
WITH allow AS (
  INSERT INTO orders_purchaseallowance (user_id, bucket_id, units) VALUES (%(user)s, %(bucket)s, %(qty)s)
  ON CONFLICT (user_id, bucket_id) DO UPDATE SET units = orders_purchaseallowance.units + excluded.units
  WHERE orders_purchaseallowance.units + excluded.units <= %(limit)s RETURNING units
), take AS (
  UPDATE orders_stockbucket SET available = available - %(qty)s, reserved = reserved + %(qty)s, updated_at = %(now)s
  WHERE id = %(bucket)s AND available >= %(qty)s AND EXISTS (SELECT 1 FROM allow) RETURNING available
), ord AS (
  INSERT INTO orders_order (number, buyer_id, room_id, status, currency, subtotal, shipping, discount, total,
    commission_total, address, payment_label, idempotency_key, request_fingerprint, expires_at, created_at, updated_at)
  SELECT %(number)s, %(user)s, %(room)s, %(status)s, %(currency)s, %(subtotal)s, %(shipping)s, %(discount)s,
    %(total)s, %(commission)s, %(address)s::jsonb, %(label)s, %(key)s, %(fingerprint)s, %(expires)s, %(now)s, %(now)s
  WHERE EXISTS (SELECT 1 FROM take) RETURNING id
), line AS (
  INSERT INTO orders_orderline (order_id, shelf_item_id, product_id, flash_sale_id, bucket_id, title, sku,
    unit_price, list_price, quantity, line_total, commission_rate, commission_amount)
  SELECT ord.id, %(item)s, %(product)s, %(sale)s, %(bucket)s, %(title)s, %(sku)s, %(unit)s, %(list)s, %(qty)s,
    %(subtotal)s, %(rate)s, %(commission)s FROM ord RETURNING id
), ev AS (
  INSERT INTO orders_orderevent (order_id, from_status, to_status, actor_kind, actor_id, reason, at)
  SELECT ord.id, '', %(status)s, 'buyer', %(user)s, 'Order placed, stock reserved', %(now)s FROM ord RETURNING id
)
SELECT (SELECT units FROM allow), (SELECT available FROM take), (SELECT id FROM ord), (SELECT id FROM line)
"""


def _queue_same_key(*, user_id: int, key: str) -> None:
    """Requests carrying the same idempotency key take their turn here, before any row lock.

    Without it, duplicates of one purchase raced into the reservation together and one of
    them waited on the other's uncommitted order key while holding locks the other needed:
    PostgreSQL found a deadlock under the 50-at-once test. Under this transaction-level
    lock, a request whose key already placed an order raises IntegrityError, the same
    signal a duplicate insert gives, and `order_place` answers with that order."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"order-key:{user_id}:{key}"])
    if Order.objects.filter(buyer_id=user_id, idempotency_key=key).exists():
        raise IntegrityError("this idempotency key has placed an order already")


def _reserve_in_one_statement(*, order: Order, line: OrderLine, limit: int, now: datetime):
    """Units left after the take; None if sold out; "limit" if over the per-user limit."""
    with connection.cursor() as cursor:
        cursor.execute(_RESERVE_SQL, {
            "user": order.buyer_id, "bucket": line.bucket_id, "qty": line.quantity, "limit": limit, "now": now,
            "number": order.number, "room": order.room_id, "status": order.status, "currency": order.currency,
            "subtotal": order.subtotal, "shipping": order.shipping, "discount": order.discount, "total": order.total,
            "commission": order.commission_total, "address": json.dumps(order.address), "label": order.payment_label,
            "key": order.idempotency_key, "fingerprint": order.request_fingerprint, "expires": order.expires_at,
            "item": line.shelf_item_id, "product": line.product_id, "sale": line.flash_sale_id,
            "title": line.title, "sku": line.sku, "unit": line.unit_price, "list": line.list_price,
            "rate": line.commission_rate,
        })  # fmt: skip
        units, left, order_id, line_id = cursor.fetchone()
    if units is None:
        return "limit"
    if order_id is None:
        return None
    order.pk, line.pk = order_id, line_id
    order._state.adding = line._state.adding = False
    return left


# --- a flash-sale buy in ONE round trip (PostgreSQL; the room socket's event loop) --------
#
# `orders.fastpath` runs these on the event loop's own async connections. The offer's
# fixed facts (price, limit, hold time, bucket, product snapshot, commission rate) come from
# a short-lived per-process cache (`FLASH_OFFER_SQL`); the statement re-checks every one of
# them against the rows, together with everything that may change at any moment (room live,
# item active, product sellable, the sale's window, the buyer's address, the key not used
# yet). Any mismatch writes nothing and the caller takes the full path (`order_place`),
# which gives the precise answer. The writes are `_RESERVE_SQL`'s (allowance, order, line,
# first audit row, THE gate), plus the sale's `sold_out_at` when the last unit goes, in the
# lock order allowance -> order's unique key -> bucket: the hot bucket row is taken LAST,
# so it is held only for the gate itself and the commit. The statement runs on its own
# (autocommit): when the gate refuses, it raises (the `SOLD_OUT_MARK` cast error) so the
# whole statement (allowance, order, line, audit row) rolls back; the hot row is never held
# across a round trip.


@dataclass(frozen=True)
class FlashOffer:
    sale_id: int
    item_id: int
    room_id: int
    bucket_id: int
    product_id: int
    unit_price: Decimal
    per_user_limit: int
    hold_minutes: int
    title: str
    sku: str
    list_price: Decimal
    currency: str
    rate: Decimal


FLASH_OFFER_SQL = (
    "SELECT s.bucket_id, i.product_id, s.sale_price, s.per_user_limit, s.reservation_minutes, p.title, p.sku, "
    "p.list_price, p.currency, COALESCE(p.commission_rate, c.commission_rate, rt.default_commission_rate) "
    "FROM orders_flashsale s JOIN streams_shelfitem i ON i.id = s.shelf_item_id "
    "JOIN catalog_product p ON p.id = i.product_id LEFT JOIN catalog_category c ON c.id = p.category_id "
    "JOIN catalog_retailer rt ON rt.id = p.retailer_id "
    "WHERE s.id = %s AND s.shelf_item_id = %s AND i.room_id = %s"
)


def flash_offer(*, sale_id: int, item_id: int, room_id: int, row) -> FlashOffer | None:
    if row is None or None in row:
        return None
    bucket_id, product_id, price, limit, hold, title, sku, list_price, currency, rate = row
    return FlashOffer(sale_id, item_id, room_id, bucket_id, product_id, price, limit, hold, title, sku, list_price,
                      currency, rate)  # fmt: skip


SOLD_OUT_MARK = "orders.sold_out:"

# The offer's rows, every cached value re-checked (the sale's window and the key are per buyer).
_FLASH_OFFER_ROWS = """orders_flashsale s
  JOIN streams_shelfitem i ON i.id = s.shelf_item_id JOIN streams_room r ON r.id = i.room_id
  JOIN catalog_product p ON p.id = i.product_id LEFT JOIN catalog_category c ON c.id = p.category_id
  JOIN catalog_retailer rt ON rt.id = p.retailer_id
  WHERE s.id = %(sale)s AND s.shelf_item_id = %(item)s AND i.room_id = %(room)s AND r.status = 'live'
    AND i.is_active AND p.sellable AND p.self_operated AND p.in_feed
    AND s.bucket_id = %(bucket)s AND i.product_id = %(product)s
    AND s.sale_price = %(unit)s AND s.per_user_limit = %(limit)s AND s.reservation_minutes = %(hold)s
    AND p.title = %(title)s AND p.sku = %(sku)s AND p.list_price = %(list)s AND p.currency = %(currency)s
    AND COALESCE(p.commission_rate, c.commission_rate, rt.default_commission_rate) = %(rate)s"""
_ADDRESS_SNAPSHOT = """jsonb_build_object('recipient', a.recipient, 'phone', a.phone, 'province', a.province,
    'city', a.city, 'district', a.district, 'line', a.line, 'postal_code', a.postal_code)"""
_ADDRESS_COMPLETE = "a.recipient <> '' AND a.phone <> '' AND a.province <> '' AND a.city <> '' AND a.line <> ''"
# The statements below are put together from these constants (S608); values go as parameters.
# A refusal is an error, so that nothing the statement wrote stays:
_SOLD_OUT_RAISE = (
    f"('{SOLD_OUT_MARK}' || COALESCE((SELECT b.available FROM orders_stockbucket b WHERE b.id = %(bucket)s), 0))::int"  # noqa: S608
)

FLASH_RESERVE_SQL = f"""
WITH offer AS (
  SELECT 1 AS ok FROM {_FLASH_OFFER_ROWS}
    AND s.starts_at <= %(now)s AND s.ends_at > %(now)s
    AND NOT EXISTS (SELECT 1 FROM orders_order o WHERE o.buyer_id = %(user)s AND o.idempotency_key = %(key)s)
), addr AS (
  SELECT {_ADDRESS_SNAPSHOT} AS snap
  FROM accounts_address a WHERE a.id = %(address)s AND a.user_id = %(user)s AND {_ADDRESS_COMPLETE}
), allow AS (
  INSERT INTO orders_purchaseallowance (user_id, bucket_id, units)
  SELECT %(user)s, %(bucket)s, %(qty)s FROM offer, addr WHERE true
  ON CONFLICT (user_id, bucket_id) DO UPDATE SET units = orders_purchaseallowance.units + excluded.units
  WHERE orders_purchaseallowance.units + excluded.units <= %(limit)s RETURNING units
), ord AS (
  INSERT INTO orders_order (number, buyer_id, room_id, status, currency, subtotal, shipping, discount, total,
    commission_total, address, payment_label, idempotency_key, request_fingerprint, expires_at, created_at, updated_at)
  SELECT %(number)s, %(user)s, %(room)s, %(status)s, %(currency)s, %(subtotal)s, %(shipping)s, %(discount)s,
    %(total)s, %(commission)s, addr.snap, %(label)s, %(key)s, %(fingerprint)s, %(expires)s, %(now)s, %(now)s
  FROM addr WHERE EXISTS (SELECT 1 FROM allow) RETURNING id
), line AS (
  INSERT INTO orders_orderline (order_id, shelf_item_id, product_id, flash_sale_id, bucket_id, title, sku,
    unit_price, list_price, quantity, line_total, commission_rate, commission_amount)
  SELECT ord.id, %(item)s, %(product)s, %(sale)s, %(bucket)s, %(title)s, %(sku)s, %(unit)s, %(list)s, %(qty)s,
    %(subtotal)s, %(rate)s, %(commission)s FROM ord RETURNING id
), ev AS (
  INSERT INTO orders_orderevent (order_id, from_status, to_status, actor_kind, actor_id, reason, at)
  SELECT ord.id, '', %(status)s, 'buyer', %(user)s, 'Order placed, stock reserved', %(now)s FROM ord RETURNING id
), take AS (
  UPDATE orders_stockbucket SET available = available - %(qty)s, reserved = reserved + %(qty)s, updated_at = %(now)s
  WHERE id = %(bucket)s AND available >= %(qty)s AND EXISTS (SELECT 1 FROM line) AND EXISTS (SELECT 1 FROM ev)
  RETURNING available
), gone AS (
  UPDATE orders_flashsale SET sold_out_at = %(now)s
  WHERE id = %(sale)s AND sold_out_at IS NULL AND EXISTS (SELECT 1 FROM take WHERE available = 0) RETURNING id
)
SELECT (SELECT ok FROM offer), (SELECT units FROM allow), (SELECT available FROM take), (SELECT id FROM ord),
  (SELECT id FROM gone),
  CASE WHEN EXISTS (SELECT 1 FROM allow) AND NOT EXISTS (SELECT 1 FROM take) THEN {_SOLD_OUT_RAISE} END
"""  # noqa: S608

# Many buyers of one offer in ONE statement: FLASH_RESERVE_SQL's checks and writes per
# buyer (arrays, in arrival order `n`), and THE gate once, for the units of every buyer who
# got this far. Per buyer in arrival order: (n, the offer holds, order id or NULL, units left
# after the whole batch, the sale sold out now, the refusal). A buyer twice in one batch
# (ON CONFLICT cannot touch a row twice) or a gate that refuses raises: nothing stays, and
# the caller tries each buyer on their own.
FLASH_RESERVE_BATCH_SQL = f"""
WITH req AS (
  SELECT * FROM unnest(%(users)s::bigint[], %(keys)s::text[], %(addresses)s::bigint[], %(qtys)s::int[],
    %(numbers)s::text[], %(subtotals)s::numeric[], %(discounts)s::numeric[], %(totals)s::numeric[],
    %(commissions)s::numeric[], %(labels)s::text[], %(fingerprints)s::text[], %(expires_list)s::timestamptz[],
    %(nows)s::timestamptz[]) WITH ORDINALITY AS r(user_id, key, address_id, qty, number, subtotal, discount, total,
    commission, label, fingerprint, expires, at, n)
), offer AS (
  SELECT s.starts_at, s.ends_at FROM {_FLASH_OFFER_ROWS}
), ok AS (
  SELECT req.*, {_ADDRESS_SNAPSHOT} AS snap FROM req
  JOIN offer ON offer.starts_at <= req.at AND offer.ends_at > req.at
  JOIN accounts_address a ON a.id = req.address_id AND a.user_id = req.user_id AND {_ADDRESS_COMPLETE}
  WHERE NOT EXISTS (SELECT 1 FROM orders_order o WHERE o.buyer_id = req.user_id AND o.idempotency_key = req.key)
), allow AS (
  INSERT INTO orders_purchaseallowance (user_id, bucket_id, units)
  SELECT user_id, %(bucket)s, qty FROM ok ORDER BY user_id
  ON CONFLICT (user_id, bucket_id) DO UPDATE SET units = orders_purchaseallowance.units + excluded.units
  WHERE orders_purchaseallowance.units + excluded.units <= %(limit)s RETURNING user_id
), ord AS (
  INSERT INTO orders_order (number, buyer_id, room_id, status, currency, subtotal, shipping, discount, total,
    commission_total, address, payment_label, idempotency_key, request_fingerprint, expires_at, created_at, updated_at)
  SELECT ok.number, ok.user_id, %(room)s, %(status)s, %(currency)s, ok.subtotal, %(shipping)s, ok.discount,
    ok.total, ok.commission, ok.snap, ok.label, ok.key, ok.fingerprint, ok.expires, ok.at, ok.at
  FROM ok JOIN allow USING (user_id) ORDER BY ok.n RETURNING id, buyer_id, idempotency_key
), line AS (
  INSERT INTO orders_orderline (order_id, shelf_item_id, product_id, flash_sale_id, bucket_id, title, sku,
    unit_price, list_price, quantity, line_total, commission_rate, commission_amount)
  SELECT ord.id, %(item)s, %(product)s, %(sale)s, %(bucket)s, %(title)s, %(sku)s, %(unit)s, %(list)s, ok.qty,
    ok.subtotal, %(rate)s, ok.commission
  FROM ord JOIN ok ON ok.user_id = ord.buyer_id AND ok.key = ord.idempotency_key RETURNING id
), ev AS (
  INSERT INTO orders_orderevent (order_id, from_status, to_status, actor_kind, actor_id, reason, at)
  SELECT ord.id, '', %(status)s, 'buyer', ord.buyer_id, 'Order placed, stock reserved', ok.at
  FROM ord JOIN ok ON ok.user_id = ord.buyer_id AND ok.key = ord.idempotency_key RETURNING id
), want AS (
  SELECT COALESCE(sum(ok.qty), 0)::int AS units FROM ok JOIN allow USING (user_id)
), take AS (
  UPDATE orders_stockbucket b SET available = b.available - want.units, reserved = b.reserved + want.units,
    updated_at = %(now)s
  FROM want WHERE b.id = %(bucket)s AND want.units > 0 AND b.available >= want.units
    AND (SELECT count(*) FROM line) = (SELECT count(*) FROM ev)
  RETURNING b.available
), gone AS (
  UPDATE orders_flashsale SET sold_out_at = %(now)s
  WHERE id = %(sale)s AND sold_out_at IS NULL AND EXISTS (SELECT 1 FROM take WHERE available = 0) RETURNING id
)
SELECT req.n, EXISTS (SELECT 1 FROM offer), ord.id, (SELECT available FROM take), (SELECT id FROM gone),
  CASE WHEN (SELECT units FROM want) > 0 AND NOT EXISTS (SELECT 1 FROM take) THEN {_SOLD_OUT_RAISE} END
FROM req LEFT JOIN ord ON ord.buyer_id = req.user_id AND ord.idempotency_key = req.key ORDER BY req.n
"""  # noqa: S608

# What every buyer of one batch shares (FlashOffer's facts), and what each has of their own.
_BATCH_SHARED = ("sale", "item", "room", "bucket", "product", "unit", "limit", "hold", "title", "sku", "list",
                 "currency", "rate", "status", "shipping")  # fmt: skip
_BATCH_OWN = {"users": "user", "keys": "key", "addresses": "address", "qtys": "qty", "numbers": "number",
              "subtotals": "subtotal", "discounts": "discount", "totals": "total", "commissions": "commission",
              "labels": "label", "fingerprints": "fingerprint", "expires_list": "expires", "nows": "now"}  # fmt: skip


def flash_batch_params(batch: list[dict]) -> dict:
    """FLASH_RESERVE_BATCH_SQL's parameters for buyers whose `flash_buy` parameters share an offer."""
    params = {name: batch[0][name] for name in _BATCH_SHARED}
    for name, own in _BATCH_OWN.items():
        params[name] = [buyer[own] for buyer in batch]
    params["now"] = max(params["nows"])
    return params


def flash_buy(*, offer: FlashOffer, user_id: int, quantity: int, address_id: int, key: str, fingerprint: str,
              card: Card | None) -> dict:  # fmt: skip
    """The parameters of FLASH_RESERVE_SQL: the same figures `_reserve` computes from a
    resolved offer (plain values: building the models cost more than the statement)."""
    now = timezone.now()
    subtotal = (offer.unit_price * quantity).quantize(CENT)
    list_total = (offer.list_price * quantity).quantize(CENT)
    commission = (subtotal * offer.rate).quantize(CENT)
    shipping = Decimal("0.00")
    return {
        "sale": offer.sale_id, "item": offer.item_id, "room": offer.room_id, "bucket": offer.bucket_id,
        "product": offer.product_id, "unit": offer.unit_price, "limit": offer.per_user_limit,
        "hold": offer.hold_minutes, "title": offer.title, "sku": offer.sku, "list": offer.list_price,
        "currency": offer.currency, "rate": offer.rate, "user": user_id, "key": key, "address": address_id,
        "qty": quantity, "now": now, "number": _new_number(now), "status": S.PENDING_PAYMENT,
        "subtotal": subtotal, "shipping": shipping, "discount": max(Decimal("0.00"), list_total - subtotal),
        "total": subtotal + shipping, "commission": commission, "label": card.label if card else "",
        "fingerprint": fingerprint, "expires": now + timedelta(minutes=offer.hold_minutes),
    }  # fmt: skip


def flash_answer(params: dict, *, card: Card | None) -> dict:
    """The buyer's answer to a reservation FLASH_RESERVE_SQL made with `params`: what
    `order_place(defer_payment=True)` answers for the same order."""
    order = live.summary(number=params["number"], status=params["status"], currency=params["currency"],
                         subtotal=params["subtotal"], shipping=params["shipping"], discount=params["discount"],
                         total=params["total"], payment=params["label"], expires_at=params["expires"],
                         lines=[(params["item"], params["title"], params["qty"], params["unit"])])  # fmt: skip
    if card is not None:
        return {"ok": True, "code": "processing", "message": RESERVED_PAYING, "order": order}
    return {"ok": True, "code": "reserved", "message": RESERVED_UNPAID, "order": order}


# --- paying ------------------------------------------------------------------------------


def order_pay(*, user: User, order_number: str, payment_method) -> PlaceResult:
    """Pay for a reserved order (when the buy did not carry a payment method)."""
    order = Order.objects.filter(buyer=user, number=order_number).first()
    if order is None:
        raise errors.NotFound("We couldn't find that order.")
    card = parse_card(payment_method)
    if card is None:
        raise errors.CardInvalid()
    _pay(order_id=order.pk, card=card, actor=user)
    _wait_settled(order.pk)
    return _answer(order)


def _pay(*, order_id: int, card: Card, actor: User | None) -> None:
    gateway = get_gateway()
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        if order.status != S.PENDING_PAYMENT or Payment.objects.filter(order_id=order_id).exists():
            return  # paid, paying, or closed: the answer is read from the order
        if order.expires_at is not None and order.expires_at <= timezone.now():
            _expire_locked(order)
            return
        payment = Payment.objects.create(
            order=order, gateway=gateway.name, reference="pay_" + secrets.token_hex(10),
            status=Payment.Status.PROCESSING, amount=order.total, currency=order.currency, card_label=card.label,
        )  # fmt: skip
        if order.payment_label != card.label:
            order.payment_label = card.label
            order.save(update_fields=["payment_label", "updated_at"])
    # No transaction, no lock: the gateway may take its time.
    try:
        result = gateway.charge(reference=payment.reference, amount=payment.amount, currency=payment.currency,
                                card=card, description=f"Order {order.number}")  # fmt: skip
    except Exception:  # a gateway that fails to answer has not taken money in the sandbox
        result = ChargeResult("declined", payment.reference, "The payment service didn't answer. No money was taken.")
    apply_charge_result(payment_id=payment.pk, outcome=result.status, decline_reason=result.decline_reason,
                        raw=result.raw)  # fmt: skip


def apply_charge_result(*, payment_id: int, outcome: str, decline_reason: str = "", raw: dict | None = None) -> str:
    """Record what the gateway said; the order follows. Safe to call twice."""
    gateway = get_gateway()
    with transaction.atomic():
        order = (
            Order.objects.select_for_update(of=("self",))
            .select_related("room")  # the commission entries name the room's host
            .filter(pk=Subquery(Payment.objects.filter(pk=payment_id).values("order_id")[:1]))
            .first()
        )
        if order is None:
            return "unknown_payment"
        order_id = order.pk
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.status in (Payment.Status.SUCCEEDED, Payment.Status.DECLINED, Payment.Status.REFUNDED):
            return "already_final"
        if raw:
            payment.raw = {**payment.raw, **raw}
        if outcome == "requires_confirmation":
            payment.status = Payment.Status.REQUIRES_CONFIRMATION
            payment.save(update_fields=["status", "raw", "updated_at"])
            reference = payment.reference
            transaction.on_commit(lambda: gateway.confirm_later(reference=reference))
            transaction.on_commit(lambda: live.order_changed(order_id=order_id))
            return "requires_confirmation"
        if outcome == "succeeded":
            payment.status = Payment.Status.SUCCEEDED
            payment.save(update_fields=["status", "raw", "updated_at"])
            if order.status != S.PENDING_PAYMENT:
                # Money arrived after the reservation ended: give it back, outside this lock.
                from orders import tasks

                transaction.on_commit(lambda: tasks.refund_late_payment.delay(payment_id))
                return "late"
            transition(order=order, to=S.PAID, actor_kind=OrderEvent.Actor.GATEWAY,
                       reason=f"Payment received ({payment.card_label})")  # fmt: skip
            prefetch_related_objects([order], "lines")  # read once, for the seam and the buckets
            _order_confirmed(order)
            _confirm_lines(order)  # last: the hot bucket row stays locked only until the commit
            return "paid"
        # declined (or anything unknown)
        payment.status = Payment.Status.DECLINED
        payment.decline_reason = (decline_reason or "Declined by the card issuer.")[:200]
        payment.save(update_fields=["status", "decline_reason", "raw", "updated_at"])
        if order.status == S.PENDING_PAYMENT:
            transition(order=order, to=S.PAYMENT_FAILED, actor_kind=OrderEvent.Actor.GATEWAY,
                       reason=payment.decline_reason)  # fmt: skip
            _release_lines(order)
            _after_release(order)
        return "declined"


def _order_confirmed(order: Order) -> None:
    """Inside the confirming transaction. The fulfilment seam (issue 6): the hand-off's
    outbox row and the host's commission entries are written HERE, in this transaction."""
    from fulfilment.services import order_confirmed

    order_confirmed(order=order)
    order_id, room_id = order.pk, order.room_id
    transaction.on_commit(lambda: live.order_paid(order_id=order_id, room_id=room_id))


def _after_release(order: Order) -> None:
    order_id = order.pk
    transaction.on_commit(lambda: live.order_released(order_id=order_id))


def full_refund_key(payment_id: int) -> str:
    """A payment is paid back in full at most once, whichever path asks for it."""
    return f"payment:{payment_id}:full"


def _refund_in_full(payment: Payment, *, reason: str) -> bool:
    """Pay a succeeded payment back in full (outside any lock; the key makes the gateway
    refund it once) and mark it refunded. False if another run marked it first."""
    get_gateway().refund(
        reference=payment.reference, amount=payment.amount, currency=payment.currency,
        idempotency_key=full_refund_key(payment.pk),
    )  # fmt: skip
    return bool(
        Payment.objects.filter(pk=payment.pk, status=Payment.Status.SUCCEEDED).update(
            status=Payment.Status.REFUNDED, decline_reason=reason, updated_at=timezone.now()
        )
    )


def refund_late_payment(*, payment_id: int) -> bool:
    """A payment that succeeded after its order closed is refunded. Idempotent."""
    payment = Payment.objects.select_related("order").filter(pk=payment_id).first()
    if payment is None or payment.status != Payment.Status.SUCCEEDED or payment.order.status == S.PAID:
        return False
    if payment.order.status not in RELEASING:
        return False
    if not _refund_in_full(payment, reason="Refunded: the payment arrived after the reservation had ended."):
        return False
    live.order_changed(order_id=payment.order_id)
    return True


# --- signed callbacks --------------------------------------------------------------------


@dataclass
class CallbackResult:
    status: int
    body: dict


def payment_callback_handle(*, body: bytes, signature: str | None, timestamp: str | None) -> CallbackResult:
    """A gateway's signed callback: HMAC-SHA256 over "<timestamp>.<body>".

    Refused: a bad or missing signature (401), a timestamp more than 5 minutes off (401),
    a malformed body (400). A delivery id seen before changes nothing (200, duplicate).
    """
    seconds, signature = inbound.unix_timestamp(timestamp), inbound.hex_signature(signature)
    if seconds is None or signature is None:
        return CallbackResult(401, {"error": "missing signature"})
    if abs(time.time() - seconds) > CALLBACK_TOLERANCE_SECONDS:
        return CallbackResult(401, {"error": "stale timestamp"})
    if not hmac.compare_digest(sign(body, timestamp), signature):
        return CallbackResult(401, {"error": "bad signature"})
    try:
        data = inbound.parse_json(body, max_bytes=CALLBACK_MAX_BYTES)
        delivery_id, reference, outcome = data["delivery_id"], data["reference"], data["outcome"]
    except (inbound.Refused, KeyError, TypeError):
        return CallbackResult(400, {"error": "malformed body"})
    if not all(isinstance(v, str) and 0 < len(v) <= 64 for v in (delivery_id, reference, outcome)):
        return CallbackResult(400, {"error": "malformed body"})
    if outcome not in ("succeeded", "declined"):
        return CallbackResult(400, {"error": "unknown outcome"})
    payment_id = Payment.objects.filter(reference=reference).values_list("pk", flat=True).first()
    if payment_id is None:
        return CallbackResult(404, {"error": "unknown payment"})
    try:
        with transaction.atomic():
            PaymentCallback.objects.create(delivery_id=delivery_id, reference=reference, outcome=outcome)
    except IntegrityError:
        return CallbackResult(200, {"ok": True, "duplicate": True})
    result = apply_charge_result(payment_id=payment_id, outcome=outcome,
                                 decline_reason="Your bank didn't confirm the payment.",
                                 raw={"callback": delivery_id})  # fmt: skip
    PaymentCallback.objects.filter(delivery_id=delivery_id).update(result=result)
    return CallbackResult(200, {"ok": True, "result": result})


# --- expiry and cancellation -------------------------------------------------------------


def _expire_locked(order: Order) -> None:
    minutes = int((order.expires_at - order.created_at).total_seconds() // 60) if order.expires_at else 0
    transition(order=order, to=S.EXPIRED, actor_kind=OrderEvent.Actor.SYSTEM,
               reason=f"Not paid within {minutes} minutes; the items went back on sale.")  # fmt: skip
    Notification.objects.create(
        user_id=order.buyer_id, kind=Notification.Kind.ORDER, room_id=order.room_id,
        text=f"Your reservation {order.number} expired before it was paid, so the items went back on sale.",
        url=order.get_absolute_url(),
    )  # fmt: skip
    _release_lines(order)  # last: the bucket rows stay locked only until the commit
    _after_release(order)


def reservation_expire(*, order_id: int, now: datetime | None = None) -> bool:
    """Expire one unpaid reservation whose time is up. True only for the call that did it."""
    now = now or timezone.now()
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(pk=order_id).first()
        if order is None or order.status != S.PENDING_PAYMENT or order.expires_at is None or order.expires_at > now:
            return False
        _expire_locked(order)
        return True


def reservations_sweep(*, now: datetime | None = None, limit: int = 500) -> int:
    now = now or timezone.now()
    ids = list(
        Order.objects.filter(status=S.PENDING_PAYMENT, expires_at__lte=now).values_list("pk", flat=True)[:limit]
    )
    return sum(reservation_expire(order_id=order_id, now=now) for order_id in ids)


def order_cancel(*, user: User, order_number: str, reason: str = "") -> Order:
    """The buyer cancels: a reservation before paying, or a paid order not yet sent on."""
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(buyer=user, number=order_number).first()
        if order is None:
            raise errors.NotFound("We couldn't find that order.")
        was = order.status
        if was not in (S.PENDING_PAYMENT, S.PAID) and was not in RELEASING:
            raise errors.IllegalTransition("The retailer already has this order; ask for a return instead.")
        transition(order=order, to=S.CANCELLED, actor_kind=OrderEvent.Actor.BUYER, actor=user,
                   reason=reason or "Cancelled by the buyer")  # fmt: skip
        if was == S.PENDING_PAYMENT:
            _release_lines(order)
        else:  # paid, not yet with the retailer
            from fulfilment.services import submit_withdraw

            submit_withdraw(order=order)  # refuses once the hand-off has started (then the retailer is asked)
            _unsell_lines(order)
            payment_id = Payment.objects.filter(order=order).values_list("pk", flat=True).first()
            if payment_id is not None:
                from orders import tasks

                transaction.on_commit(lambda: tasks.refund_cancelled.delay(payment_id))
        _after_release(order)
    return order


def refund_cancelled(*, payment_id: int) -> bool:
    payment = Payment.objects.select_related("order").filter(pk=payment_id).first()
    if payment is None or payment.status != Payment.Status.SUCCEEDED or payment.order.status != S.CANCELLED:
        return False
    return _refund_in_full(payment, reason="Refunded after cancellation.")


# --- flash sales -------------------------------------------------------------------------


def flash_sale_start(
    *,
    user: User,
    shelf_item_id,
    sale_price,
    quantity,
    per_user_limit,
    duration_seconds,
    starts_at: datetime | None = None,
    reservation_minutes: int = 3,
    room_id: int | None = None,
) -> FlashSale:
    """The host starts a flash sale: its units are carved out of the room's shelf stock."""
    shelf_item_id = _positive_int(shelf_item_id, what="product")
    quantity = _positive_int(quantity, what="quantity", maximum=100_000)
    per_user_limit = _positive_int(per_user_limit, what="per-user limit", maximum=99)
    duration = _positive_int(duration_seconds, what="duration", maximum=6 * 3600)
    price = _money(sale_price)
    now = timezone.now()
    starts_at = starts_at or now
    if timezone.is_naive(starts_at):
        raise errors.FlashSaleInvalid("The start time needs a time zone.")
    item = ShelfItem.objects.select_related("room__host", "product").filter(pk=shelf_item_id).first()
    if item is None or (room_id is not None and item.room_id != room_id):
        raise errors.NotFound("That product isn't on your shelf.")
    room = item.room
    if room.host.user_id != user.pk or not room.host.is_approved:
        raise errors.NotAllowed()
    if room.status == Room.Status.ENDED:
        raise errors.RoomEnded("The room has ended.")
    if not item.is_active or not item.product.can_be_sold_live:
        raise errors.NotAvailable("That product can't be sold in the room now.")
    if duration < 10:
        raise errors.FlashSaleInvalid("A flash sale lasts at least 10 seconds.")
    if starts_at < now - timedelta(minutes=1) or starts_at > now + timedelta(days=1):
        raise errors.FlashSaleInvalid("Start the sale now or within the next 24 hours.")
    if price <= 0 or price > item.live_price:
        raise errors.FlashSaleInvalid(
            f"The sale price must be above zero and at most the live price ¥{item.live_price}."
        )
    if price < item.product.live_price_floor:
        raise errors.FlashSaleInvalid(f"The sale price can't go below ¥{item.product.live_price_floor}.")
    if per_user_limit > quantity:
        raise errors.FlashSaleInvalid("The per-user limit can't exceed the quantity.")
    if not 1 <= reservation_minutes <= 30:
        raise errors.FlashSaleInvalid("Reservations hold for 1 to 30 minutes.")
    ends_at = starts_at + timedelta(seconds=duration)
    shelf = regular_bucket(item)
    with transaction.atomic():
        # Lock order: the shelf bucket (lower id) before the sale bucket it gives birth to.
        StockBucket.objects.select_for_update().get(pk=shelf.pk)
        if FlashSale.objects.filter(shelf_item=item, ends_at__gt=starts_at, starts_at__lt=ends_at).exists():
            raise errors.FlashSaleInvalid("This product already has a flash sale at that time.")
        carved = StockBucket.objects.filter(pk=shelf.pk, available__gte=quantity).update(
            available=F("available") - quantity, initial=F("initial") - quantity, updated_at=now
        )
        if not carved:
            left = StockBucket.objects.get(pk=shelf.pk).available
            raise errors.FlashSaleInvalid(f"Only {left} units are left on the shelf for this product.", left=left)
        bucket = StockBucket.objects.create(
            kind=StockBucket.Kind.FLASH, shelf_item=item, initial=quantity, available=quantity
        )
        sale = FlashSale.objects.create(
            room=room, shelf_item=item, bucket=bucket, sale_price=price, quantity=quantity,
            per_user_limit=per_user_limit, starts_at=starts_at, ends_at=ends_at,
            reservation_minutes=reservation_minutes, created_by=user,
        )  # fmt: skip
        sale_id = sale.pk
        transaction.on_commit(lambda: live.flash_sale_started(sale_id=sale_id))
    return sale


def flash_sale_settle(*, flash_sale_id: int, now: datetime | None = None) -> int:
    """After a sale ends its unsold units go back to the shelf. Safe to run again: it
    moves whatever came back from expired reservations since."""
    now = now or timezone.now()
    sale = FlashSale.objects.filter(pk=flash_sale_id, ends_at__lte=now).first()
    if sale is None:
        return 0
    shelf = regular_bucket(sale.shelf_item)
    with transaction.atomic():
        buckets = {
            b.pk: b
            for b in StockBucket.objects.select_for_update().filter(pk__in=[shelf.pk, sale.bucket_id]).order_by("pk")
        }
        units = buckets[sale.bucket_id].available
        if units:
            StockBucket.objects.filter(pk=sale.bucket_id).update(
                available=F("available") - units, initial=F("initial") - units, updated_at=now
            )
            StockBucket.objects.filter(pk=shelf.pk).update(
                available=F("available") + units, initial=F("initial") + units, updated_at=now
            )
        FlashSale.objects.filter(pk=sale.pk, settled_at__isnull=True).update(settled_at=now)
    return units


def flash_sales_settle_due(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    due = FlashSale.objects.filter(ends_at__lte=now).filter(Q(settled_at__isnull=True) | Q(bucket__available__gt=0))
    return sum(flash_sale_settle(flash_sale_id=pk, now=now) for pk in due.values_list("pk", flat=True)[:200])


# --- room figures ------------------------------------------------------------------------


def product_open_record(*, user: User, shelf_item_id: int) -> None:
    """A viewer opened a product's buy sheet (counted once per viewer and product)."""
    item = ShelfItem.objects.filter(pk=shelf_item_id).values("pk", "room_id").first()
    if item is None or not user.is_authenticated:
        return
    ProductOpen.objects.get_or_create(shelf_item_id=item["pk"], user=user, defaults={"room_id": item["room_id"]})


def room_stock_open(*, room_id: int) -> None:
    """Open the stock buckets of a room's active shelf items (once each; see regular_bucket)."""
    have = set(StockBucket.objects.filter(shelf_item__room_id=room_id, kind=StockBucket.Kind.REGULAR)
               .values_list("shelf_item_id", flat=True))  # fmt: skip
    for item in ShelfItem.objects.filter(room_id=room_id, is_active=True).exclude(pk__in=have):
        regular_bucket(item)
