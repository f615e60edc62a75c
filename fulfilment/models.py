"""Our side of the hand-off: the outbox, its attempts, callbacks seen, after-sales, the commission ledger."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from streams.models import Room


class OutboxMessage(models.Model):
    """Something the retailer must hear about, written in the same transaction as the change."""

    class Kind(models.TextChoices):
        SUBMIT_ORDER = "submit_order", "Send order"
        CANCEL_ORDER = "cancel_order", "Cancel order"
        REQUEST_RETURN = "request_return", "Request return"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to send"
        IN_FLIGHT = "in_flight", "Sending"
        DONE = "done", "Done"
        DEAD = "dead", "Dead-lettered"
        WITHDRAWN = "withdrawn", "Withdrawn (never sent)"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="outbox_messages")
    key = models.CharField(
        max_length=80, unique=True, help_text="One message per purpose: submit:<order>, cancel:<order>, return:<id>."
    )
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True, help_text="A sender owns the message until then.")
    queued_at = models.DateTimeField(
        null=True, blank=True, help_text="Last put on the task queue; the sweep re-queues it only after a while."
    )
    claim_token = models.CharField(max_length=32, blank=True)
    last_error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="outbox_due"),
            models.Index(fields=["status", "lease_until"], name="outbox_lease"),
        ]
        verbose_name = "outbox message"

    def __str__(self):
        return f"{self.get_kind_display()} {self.key} ({self.status})"


class DeliveryAttempt(models.Model):
    class Outcome(models.TextChoices):
        OK = "ok", "Answered"
        RETRY = "retry", "Failed, will retry"
        DEAD = "dead", "Failed, dead-lettered"

    message = models.ForeignKey(OutboxMessage, on_delete=models.CASCADE, related_name="delivery_attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=80, blank=True)

    class Meta:
        ordering = ["started_at", "id"]

    def __str__(self):
        return f"#{self.number} {self.outcome}"


class Handoff(models.Model):
    """What the retailer told us about one order: its id, the parcel, the progress."""

    order = models.OneToOneField("orders.Order", on_delete=models.CASCADE, related_name="handoff")
    retailer_order_id = models.CharField(max_length=40, blank=True)
    carrier = models.CharField(max_length=40, blank=True)
    waybill = models.CharField(max_length=40, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    return_window_ends = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.order_id} → {self.retailer_order_id or '?'}"


class RetailerCallback(models.Model):
    """Every callback delivery we applied (or refused as stale): the replay guard."""

    class Outcome(models.TextChoices):
        APPLIED = "applied", "Applied"
        STALE = "stale", "Ignored (order already further on)"
        IGNORED = "ignored", "Ignored"

    delivery_id = models.CharField(max_length=64, unique=True)
    event = models.CharField(max_length=40)
    order_number = models.CharField(max_length=64, db_index=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    detail = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self):
        return f"{self.event} {self.delivery_id}"


class AfterSalesRequest(models.Model):
    class Kind(models.TextChoices):
        CANCEL = "cancel", "Cancellation"
        RETURN = "return", "Return and refund"

    class Status(models.TextChoices):
        REQUESTED = "requested", "Sent to the retailer"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Declined"
        REFUNDED = "refunded", "Refunded"

    order = models.ForeignKey("orders.Order", on_delete=models.CASCADE, related_name="after_sales")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    key = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED)
    reason = models.CharField(max_length=200, blank=True)
    lines = models.JSONField(default=list, help_text="[{line, sku, quantity}] for returns.")
    amount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    note = models.CharField(max_length=200, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # One open request at a time per order.
            models.UniqueConstraint(fields=["order"], condition=Q(status="requested"), name="one_open_after_sales"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} of {self.order_id} ({self.status})"


class CommissionEntry(models.Model):
    """One sold line's commission for the room's host: pending, then settled or reversed."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SETTLED = "settled", "Settled"
        REVERSED = "reversed", "Reversed"

    line = models.OneToOneField("orders.OrderLine", on_delete=models.PROTECT, related_name="commission_entry")
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="commission_entries")
    host = models.ForeignKey("accounts.HostProfile", on_delete=models.PROTECT, related_name="commission_entries")
    room = models.ForeignKey("streams.Room", on_delete=models.PROTECT, related_name="commission_entries")
    rate = models.DecimalField(max_digits=5, decimal_places=4)
    base = models.DecimalField(max_digits=12, decimal_places=2, help_text="What the buyer paid for the line.")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="CNY")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    settle_after = models.DateTimeField(
        null=True, blank=True, help_text="When the return window closes (set at delivery)."
    )
    reversal_reason = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    reversed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["host", "room", "status"]), models.Index(fields=["status", "settle_after"])]
        verbose_name_plural = "commission entries"

    def __str__(self):
        return f"{self.amount} {self.currency} for {self.host_id} ({self.status})"


class RoomMoney(Room):
    """Staff's per-room money report in admin (GMV, refunds, commission); stores nothing."""

    class Meta:
        proxy = True
        verbose_name = "room money report"
        verbose_name_plural = "room money reports"
