"""Our copy of the partner retailer's catalog.

Retailer-owned fields (title, brand, description, images, list price, stock, the
self-operated flag) arrive through the catalog feed and are never edited here. Ours:
whether a product may be sold in live rooms, its commission rate and the live-price floor.
"""

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse


class Retailer(models.Model):
    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=120)
    default_commission_rate = models.DecimalField(
        max_digits=5, decimal_places=4, default=Decimal("0.0500"),
        validators=[MinValueValidator(0), MaxValueValidator(Decimal("0.5"))],
    )  # fmt: skip
    # Where the next incremental sync resumes: the feed's opaque cursor, saved page by page.
    feed_cursor = models.CharField(max_length=64, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    # A lease, not a lock held by a transaction: a sync spans many short transactions.
    # Taken with one conditional UPDATE, renewed every page, expires if a worker dies.
    sync_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    sync_lease_holder = models.CharField(max_length=64, blank=True, editable=False)

    def __str__(self):
        return self.name


class Category(models.Model):
    retailer = models.ForeignKey(Retailer, on_delete=models.PROTECT, related_name="categories")
    code = models.SlugField(max_length=64)
    name = models.CharField(max_length=120)
    commission_rate = models.DecimalField(
        max_digits=5, decimal_places=4, null=True, blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(Decimal("0.5"))],
        help_text="Overrides the retailer's default rate for products in this category.",
    )  # fmt: skip

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"
        constraints = [models.UniqueConstraint(fields=["retailer", "code"], name="category_code_per_retailer")]

    def __str__(self):
        return self.name


class Product(models.Model):
    class Currency(models.TextChoices):
        CNY = "CNY", "Chinese yuan"

    # Retailer-owned (from the feed)
    retailer = models.ForeignKey(Retailer, on_delete=models.PROTECT, related_name="products")
    sku = models.CharField("retailer SKU", max_length=64)
    category = models.ForeignKey(Category, null=True, on_delete=models.PROTECT, related_name="products")
    title = models.CharField(max_length=200)
    brand = models.CharField(max_length=80, blank=True)
    description = models.TextField(blank=True)
    list_price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, choices=Currency.choices, default=Currency.CNY)
    self_operated = models.BooleanField(default=False, help_text="Owned, stored and shipped by the retailer itself.")
    retailer_stock = models.PositiveIntegerField(default=0)
    seller_name = models.CharField(max_length=120, blank=True)
    in_feed = models.BooleanField(default=True, help_text="False once the product disappears from the feed.")
    feed_updated_at = models.DateTimeField(null=True, blank=True)
    # Lower-case "brand title sku", kept by the sync; trigram-indexed on PostgreSQL for search.
    search_text = models.TextField(blank=True, editable=False)

    # Ours
    sellable = models.BooleanField(
        "sellable in live rooms", default=False, db_index=True,
        help_text="Staff switch. Only self-operated products still in the feed can be sold.",
    )  # fmt: skip
    commission_rate = models.DecimalField(
        max_digits=5, decimal_places=4, null=True, blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(Decimal("0.5"))],
        help_text="Blank: the category's rate, else the retailer's default.",
    )  # fmt: skip
    min_live_price = models.DecimalField(
        "live-price floor", max_digits=12, decimal_places=2, null=True, blank=True,
        help_text="Hosts may not set a live price below this. Blank: 50% of the list price.",
    )  # fmt: skip
    withdrawn_reason = models.CharField(max_length=200, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]
        constraints = [
            models.UniqueConstraint(fields=["retailer", "sku"], name="sku_unique_per_retailer"),
            # A third-party product, or one gone from the feed, is never sellable.
            models.CheckConstraint(
                condition=models.Q(sellable=False) | models.Q(self_operated=True, in_feed=True),
                name="only_self_operated_in_feed_sellable",
            ),
        ]
        indexes = [
            # The hosts' product picker lists sellable products by title, in a category or not.
            models.Index(fields=["title", "id"], condition=models.Q(sellable=True), name="product_sellable_title"),
            models.Index(
                fields=["category", "title", "id"],
                condition=models.Q(sellable=True),
                name="product_sellable_cat_title",
            ),
        ]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("catalog:product", args=[self.pk])

    @property
    def in_stock(self) -> bool:
        return self.retailer_stock > 0

    @property
    def can_be_sold_live(self) -> bool:
        return self.sellable and self.self_operated and self.in_feed

    @property
    def live_price_floor(self) -> Decimal:
        if self.min_live_price is not None:
            return self.min_live_price
        return (self.list_price / 2).quantize(Decimal("0.01"))

    @property
    def effective_commission_rate(self) -> Decimal:
        if self.commission_rate is not None:
            return self.commission_rate
        if self.category_id and self.category.commission_rate is not None:
            return self.category.commission_rate
        return self.retailer.default_commission_rate


class ProductImage(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="images")
    url = models.CharField(max_length=500, help_text="As the retailer's feed gives it.")
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return self.url


class PriceChange(models.Model):
    """Every list-price change the feed brought: enough for "lowest price in 30 days"."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="price_changes")
    old_price = models.DecimalField(max_digits=12, decimal_places=2, null=True)
    new_price = models.DecimalField(max_digits=12, decimal_places=2)
    changed_at = models.DateTimeField()
    sync_run = models.ForeignKey("SyncRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-changed_at"]
        indexes = [models.Index(fields=["product", "-changed_at"], name="pricechange_product_time")]

    def __str__(self):
        return f"{self.product_id}: {self.old_price} -> {self.new_price}"


class SyncRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped (another sync was running)"

    retailer = models.ForeignKey(Retailer, on_delete=models.PROTECT, related_name="sync_runs")

    class Trigger(models.TextChoices):
        COMMAND = "command", "Command"  # manage.py sync_catalog
        BEAT = "beat", "Schedule"  # Celery beat
        ADMIN = "admin", "Admin"
        SEED = "seed", "Seed"  # manage.py seed_demo
        MANUAL = "manual", "Manual"

    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.MANUAL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cursor_from = models.CharField(max_length=64, blank=True)
    cursor_to = models.CharField(max_length=64, blank=True)
    pages = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    withdrawn = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    price_changes = models.PositiveIntegerField(default=0)
    full = models.BooleanField(default=False, help_text="Read the whole feed and withdraw what is no longer in it.")
    errors = models.JSONField(default=list, blank=True)
    message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return f"Sync {self.pk} ({self.status})"

    @property
    def duration(self):
        return (self.finished_at - self.started_at) if self.finished_at else None
