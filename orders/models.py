"""Orders, their audit trail, payments, flash sales and the stock they are sold from.

Stock lives in `StockBucket` rows: one per shelf item for the room's regular sales and
one per flash sale. Every bucket keeps `available + reserved + sold == initial`, checked
by the database itself. Units leave `available` only through one conditional UPDATE
(`orders.services._stock_take`), so a bucket can never go below zero.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.urls import get_script_prefix, reverse

from streams.models import Room

_NUMBER_SLOT = "NUMBER-SLOT"
_order_urls: dict[str, str] = {}


def order_url(number: str) -> str:
    """An order's page, reversed once per script prefix rather than once per order (about
    75 µs a `reverse()`, and a flash sale answers a thousand buyers at once)."""
    prefix = get_script_prefix()
    template = _order_urls.get(prefix)
    if template is None:
        template = _order_urls[prefix] = reverse("orders:detail", args=[_NUMBER_SLOT])
    return template.replace(_NUMBER_SLOT, number)


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING_PAYMENT = "pending_payment", "Waiting for payment"
        PAID = "paid", "Confirmed"
        PAYMENT_FAILED = "payment_failed", "Payment declined"
        EXPIRED = "expired", "Reservation expired"
        CANCELLED = "cancelled", "Cancelled"
        # Fulfilment (issue 6) moves a paid order through these.
        SENT_TO_RETAILER = "sent_to_retailer", "Sent to the retailer"
        ACCEPTED = "accepted", "Accepted by the retailer"
        PACKED = "packed", "Packed"
        SHIPPED = "shipped", "Shipped"
        DELIVERED = "delivered", "Delivered"
        REFUNDED = "refunded", "Refunded"

    number = models.CharField(max_length=20, unique=True)
    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    room = models.ForeignKey("streams.Room", on_delete=models.PROTECT, related_name="orders")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING_PAYMENT, db_index=True)
    currency = models.CharField(max_length=3, default="CNY")
    subtotal = models.DecimalField(max_digits=12, decimal_places=2)
    shipping = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    discount = models.DecimalField(
        max_digits=12, decimal_places=2, default=Decimal("0.00"), help_text="Saved against the list price."
    )
    total = models.DecimalField(max_digits=12, decimal_places=2)
    commission_total = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    address = models.JSONField(help_text="The shipping address as it was when the order was placed.")
    payment_label = models.CharField(max_length=40, blank=True)
    idempotency_key = models.CharField(max_length=64)
    request_fingerprint = models.CharField(max_length=64)
    expires_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["buyer", "idempotency_key"], name="order_idempotency_key_per_buyer"),
            models.CheckConstraint(condition=Q(total__gte=0), name="order_total_not_negative"),
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"]),
            models.Index(fields=["buyer", "-created_at"]),
            models.Index(fields=["room", "status"]),
        ]

    def __str__(self):
        return self.number

    def get_absolute_url(self):
        return order_url(self.number)

    @property
    def units(self) -> int:
        return sum(line.quantity for line in self.lines.all())


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    shelf_item = models.ForeignKey("streams.ShelfItem", on_delete=models.PROTECT, related_name="order_lines")
    product = models.ForeignKey("catalog.Product", on_delete=models.PROTECT, related_name="order_lines")
    flash_sale = models.ForeignKey(
        "FlashSale", null=True, blank=True, on_delete=models.PROTECT, related_name="order_lines"
    )
    bucket = models.ForeignKey("StockBucket", on_delete=models.PROTECT, related_name="order_lines")
    title = models.CharField(max_length=200)
    sku = models.CharField(max_length=64)
    unit_price = models.DecimalField(max_digits=12, decimal_places=2, help_text="The price the buyer paid.")
    list_price = models.DecimalField(max_digits=12, decimal_places=2)
    quantity = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    line_total = models.DecimalField(max_digits=12, decimal_places=2)
    commission_rate = models.DecimalField(max_digits=5, decimal_places=4)
    commission_amount = models.DecimalField(
        max_digits=12, decimal_places=2, help_text="What the room's host earns on this line."
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="line_quantity_positive"),
            models.CheckConstraint(
                condition=Q(line_total=F("unit_price") * F("quantity")), name="line_total_is_price_times_qty"
            ),
        ]

    def __str__(self):
        return f"{self.quantity} x {self.title}"


class OrderEvent(models.Model):
    """One row per state change: the order's audit trail and the buyer's timeline."""

    class Actor(models.TextChoices):
        BUYER = "buyer", "Buyer"
        SYSTEM = "system", "System"
        GATEWAY = "gateway", "Payment gateway"
        STAFF = "staff", "Staff"
        RETAILER = "retailer", "Retailer"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, choices=Order.Status.choices)
    actor_kind = models.CharField(max_length=10, choices=Actor.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.order_id}: {self.from_status or '∅'} → {self.to_status}"


class Payment(models.Model):
    class Status(models.TextChoices):
        PROCESSING = "processing", "Processing"
        REQUIRES_CONFIRMATION = "requires_confirmation", "Waiting for the bank's confirmation"
        SUCCEEDED = "succeeded", "Succeeded"
        DECLINED = "declined", "Declined"
        REFUNDED = "refunded", "Refunded"

    order = models.OneToOneField(Order, on_delete=models.PROTECT, related_name="payment")
    gateway = models.CharField(max_length=20)
    reference = models.CharField(max_length=40, unique=True)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PROCESSING, db_index=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    card_label = models.CharField(max_length=40, blank=True)
    decline_reason = models.CharField(max_length=200, blank=True)
    raw = models.JSONField(default=dict, blank=True, help_text="What the gateway answered (never a card number).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.reference} ({self.status})"


class SandboxRefund(models.Model):
    """The sandbox gateway's own record of the refunds it made: one per idempotency key,
    as a real gateway keeps them, so asking twice never pays back twice."""

    idempotency_key = models.CharField(max_length=80, unique=True)
    reference = models.CharField(max_length=40, db_index=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.idempotency_key}: {self.amount} {self.currency}"


class PaymentCallback(models.Model):
    """Every signed callback delivery applied once: the replay guard."""

    delivery_id = models.CharField(max_length=64, unique=True)
    reference = models.CharField(max_length=40, db_index=True)
    outcome = models.CharField(max_length=20)
    result = models.CharField(max_length=40, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self):
        return self.delivery_id


class StockBucket(models.Model):
    """Units one shelf item (or one flash sale) may sell in its room."""

    class Kind(models.TextChoices):
        REGULAR = "regular", "Shelf"
        FLASH = "flash", "Flash sale"

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.REGULAR)
    shelf_item = models.ForeignKey("streams.ShelfItem", on_delete=models.CASCADE, related_name="stock_buckets")
    initial = models.IntegerField()
    available = models.IntegerField()
    reserved = models.IntegerField(default=0)
    sold = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["shelf_item"], condition=Q(kind="regular"), name="one_regular_bucket"),
            models.CheckConstraint(condition=Q(available__gte=0), name="bucket_available_not_negative"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="bucket_reserved_not_negative"),
            models.CheckConstraint(condition=Q(sold__gte=0), name="bucket_sold_not_negative"),
            models.CheckConstraint(
                condition=Q(initial=F("available") + F("reserved") + F("sold")), name="bucket_units_conserved"
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} #{self.pk}: {self.available} left"


class PurchaseAllowance(models.Model):
    """Units a buyer holds (reserved or bought) from one bucket: the per-user limit."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    bucket = models.ForeignKey(StockBucket, on_delete=models.CASCADE, related_name="allowances")
    units = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "bucket"], name="one_allowance_per_user_bucket"),
            models.CheckConstraint(condition=Q(units__gte=0), name="allowance_not_negative"),
        ]

    def __str__(self):
        return f"{self.user_id} holds {self.units} of bucket {self.bucket_id}"


class FlashSale(models.Model):
    room = models.ForeignKey("streams.Room", on_delete=models.CASCADE, related_name="flash_sales")
    shelf_item = models.ForeignKey("streams.ShelfItem", on_delete=models.CASCADE, related_name="flash_sales")
    bucket = models.OneToOneField(StockBucket, on_delete=models.PROTECT, related_name="flash_sale")
    sale_price = models.DecimalField(max_digits=12, decimal_places=2)
    quantity = models.PositiveIntegerField()
    per_user_limit = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reservation_minutes = models.PositiveSmallIntegerField(default=3)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    sold_out_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(
        null=True, blank=True, help_text="When the units left after the sale went back to the shelf."
    )

    class Meta:
        ordering = ["-starts_at"]
        constraints = [models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="sale_ends_after_start")]

    def __str__(self):
        return f"Flash sale #{self.pk}: {self.quantity} x {self.shelf_item} at {self.sale_price}"

    def phase(self, now) -> str:
        if now < self.starts_at:
            return "upcoming"
        if now >= self.ends_at:
            return "over"
        return "running"


class ProductOpen(models.Model):
    """A viewer opened a product's buy sheet in a room: the denominator of conversion."""

    room = models.ForeignKey("streams.Room", on_delete=models.CASCADE, related_name="+")
    shelf_item = models.ForeignKey("streams.ShelfItem", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shelf_item", "user"], name="product_open_once")]

    def __str__(self):
        return f"{self.user_id} opened {self.shelf_item_id}"


class RoomSales(Room):
    """Staff's per-room view of sales in admin (see admin.py); stores nothing of its own."""

    class Meta:
        proxy = True
        verbose_name = "room sales"
        verbose_name_plural = "room sales"
