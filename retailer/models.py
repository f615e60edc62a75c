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

    kind = models.CharField(max_length=8, choices=Kind.choices)
    endpoint = models.CharField(max_length=64, blank=True, help_text="e.g. catalog/feed; blank = every endpoint")
    status_code = models.PositiveSmallIntegerField(default=503)
    delay_seconds = models.FloatField(default=0)
    remaining = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "sandbox fault"

    def __str__(self):
        what = f"HTTP {self.status_code}" if self.kind == self.Kind.ERROR else f"sleep {self.delay_seconds}s"
        return f"{what} x{self.remaining} on {self.endpoint or 'every endpoint'}"
