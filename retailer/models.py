"""The sandbox retailer's own records: another company's system, with its own tables.

Nothing outside `retailer/` imports this module. The platform reaches the sandbox only
through its public API (`retailer.api`, in-process) or its HTTP API (`retailer.views`).
"""

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models


class SandboxCategory(models.Model):
    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)

    class Meta:
        ordering = ["name"]
        verbose_name = "sandbox category"
        verbose_name_plural = "sandbox categories"

    def __str__(self):
        return self.name


class SandboxProduct(models.Model):
    class Seller(models.TextChoices):
        SELF_OPERATED = "self_operated", "Self-operated"
        THIRD_PARTY = "third_party", "Third-party seller"

    class Status(models.TextChoices):
        ACTIVE = "active", "On sale"
        RETIRED = "retired", "Retired"

    sku = models.CharField(max_length=64, unique=True)
    category = models.ForeignKey(SandboxCategory, on_delete=models.PROTECT, related_name="products")
    title = models.CharField(max_length=200)
    brand = models.CharField(max_length=80)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))])
    currency = models.CharField(max_length=3, default="CNY")
    seller_type = models.CharField(max_length=16, choices=Seller.choices, default=Seller.SELF_OPERATED)
    seller_name = models.CharField(max_length=120)
    stock = models.PositiveIntegerField(default=0)
    image_urls = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # Position in the catalog feed: every change takes the next value of the feed sequence,
    # so a partner that remembers the last `seq` it saw pulls only what changed since.
    seq = models.PositiveBigIntegerField(db_index=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        verbose_name = "sandbox product"

    def __str__(self):
        return f"{self.sku} {self.title}"


class SandboxSequence(models.Model):
    """One row per named counter; the feed sequence is "feed". Locked while bumped."""

    name = models.CharField(max_length=32, unique=True)
    value = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"{self.name}={self.value}"


class SandboxFault(models.Model):
    """Failures on demand: the next `remaining` API calls answer an error or answer late."""

    class Kind(models.TextChoices):
        ERROR = "error", "Answer with an HTTP error"
        SLOW = "slow", "Answer late (sleep first)"
        TIMEOUT = "timeout", "Do the work, then answer late with HTTP 504 (the answer is lost)"
        DUPLICATE_CALLBACKS = "dup_callbacks", "Send each status callback twice"
        OUT_OF_ORDER_CALLBACKS = "ooo_callbacks", "Send the next batch of callbacks newest first"
        REJECT_RETURNS = "reject_returns", "Reject the next return requests"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    endpoint = models.CharField(max_length=64, blank=True, help_text="e.g. catalog/feed; blank = every endpoint")
    status_code = models.PositiveSmallIntegerField(default=503)
    delay_seconds = models.FloatField(default=0)
    remaining = models.PositiveIntegerField(default=1)
    probability = models.FloatField(
        default=1.0, help_text="Chance that a call meets the fault (1 = every call; 0.2 = an error rate of 20%)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "sandbox fault"

    def __str__(self):
        what = {
            self.Kind.ERROR: f"HTTP {self.status_code}",
            self.Kind.SLOW: f"sleep {self.delay_seconds}s",
            self.Kind.TIMEOUT: f"lost answer after {self.delay_seconds}s",
        }.get(self.kind, self.get_kind_display())
        return f"{what} x{self.remaining} on {self.endpoint or 'every endpoint'}"


class SandboxOrder(models.Model):
    """An order a partner handed over, keyed by the partner's idempotency key (their order number)."""

    class Status(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        PACKED = "packed", "Packed"
        SHIPPED = "shipped", "Shipped"
        DELIVERED = "delivered", "Delivered"
        CANCELLED = "cancelled", "Cancelled"
        REFUSED = "refused", "Refused"

    partner_key = models.CharField(max_length=64, unique=True, help_text="The partner's idempotency key.")
    reference = models.CharField(max_length=32, unique=True, help_text="Our order id, given to the partner.")
    status = models.CharField(max_length=12, choices=Status.choices, db_index=True)
    lines = models.JSONField(default=list)
    address = models.JSONField(default=dict, blank=True)
    total = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    currency = models.CharField(max_length=3, default="CNY")
    refusal_code = models.CharField(max_length=40, blank=True)
    refusal_message = models.CharField(max_length=200, blank=True)
    carrier = models.CharField(max_length=40, blank=True)
    waybill = models.CharField(max_length=40, blank=True)
    times_submitted = models.PositiveIntegerField(default=1, help_text="How often the partner sent this key.")
    next_step_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    packed_at = models.DateTimeField(null=True, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "sandbox order"

    def __str__(self):
        return f"{self.reference} ({self.partner_key})"


class SandboxReturn(models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    partner_key = models.CharField(max_length=64, unique=True)
    order = models.ForeignKey(SandboxOrder, on_delete=models.CASCADE, related_name="returns")
    lines = models.JSONField(default=list)
    reason = models.CharField(max_length=200)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.REQUESTED, db_index=True)
    decide_at = models.DateTimeField(db_index=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "sandbox return"

    def __str__(self):
        return f"return {self.partner_key} of {self.order.reference}"


class SandboxCallback(models.Model):
    """A status callback the retailer owes the partner: its own outbox, sent signed, retried."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"

    delivery_id = models.CharField(max_length=40, unique=True)
    order = models.ForeignKey(SandboxOrder, on_delete=models.CASCADE, related_name="callbacks")
    event = models.CharField(max_length=40)
    body = models.JSONField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
        verbose_name = "sandbox callback"

    def __str__(self):
        return f"{self.event} {self.delivery_id}"
