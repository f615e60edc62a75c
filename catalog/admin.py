"""Admin for the merchandising team: the retailer's catalog, the live-room switch, sync runs.

Retailer-owned fields are read-only here (they come from the feed and would be overwritten);
ours are the "sellable in live rooms" switch, commission and the live-price floor.
"""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from catalog import selectors
from catalog.models import Category, PriceChange, Product, ProductImage, Retailer, SyncRun
from catalog.services import catalog_sync, products_allow_live, products_withdraw

LOW_STOCK = 10


def money(value) -> str:
    return f"¥{value:,.2f}" if value is not None else "-"


def sync_message(run: SyncRun) -> tuple[str, int]:
    if run.status == SyncRun.Status.SKIPPED:
        return "Another sync is already running; try again in a moment.", messages.WARNING
    text = (
        f"Sync #{run.pk} {run.get_status_display().lower()}: {run.created} created, {run.updated} updated, "
        f"{run.withdrawn} withdrawn, {run.rejected} rejected."
    )
    if run.status == SyncRun.Status.FAILED:
        return f"{text} {run.message}", messages.ERROR
    return text, messages.WARNING if run.rejected else messages.SUCCESS


class SyncNowMixin:
    """A "Sync catalog now" button on the change list (POST, staff with change permission)."""

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [
            path("sync-now/", self.admin_site.admin_view(self.sync_now_view), name="{}_{}_sync_now".format(*info)),
            *super().get_urls(),
        ]

    def sync_now_view(self, request):
        back = reverse(f"admin:{self.model._meta.app_label}_{self.model._meta.model_name}_changelist")
        if request.method != "POST" or not request.user.has_perm("catalog.change_product"):
            self.message_user(request, "Use the Sync catalog now button.", messages.ERROR)
            return HttpResponseRedirect(back)
        run = catalog_sync(trigger=SyncRun.Trigger.ADMIN, full=request.POST.get("full") == "1")
        self.message_user(request, *sync_message(run))
        return HttpResponseRedirect(back)

    def changelist_view(self, request, extra_context=None):
        last = SyncRun.objects.exclude(status=SyncRun.Status.SKIPPED).first()
        counts = Product.objects.aggregate(
            total=Count("id"),
            sellable=Count("id", filter=Q(sellable=True)),
            eligible=Count("id", filter=Q(self_operated=True, in_feed=True)),
        )
        extra = {
            "last_sync": last,
            "last_sync_ago": timesince(last.started_at, timezone.now()) if last else "",
            "catalog_counts": counts,
            "sync_url": reverse(f"admin:{self.model._meta.app_label}_{self.model._meta.model_name}_sync_now"),
        }
        return super().changelist_view(request, extra_context={**(extra_context or {}), **extra})


class InStockFilter(admin.SimpleListFilter):
    title = "stock"
    parameter_name = "stock"

    def lookups(self, request, model_admin):
        return [("in", "In stock"), ("low", f"Low (1 to {LOW_STOCK})"), ("out", "Out of stock")]

    def queryset(self, request, queryset):
        if self.value() == "in":
            return queryset.filter(retailer_stock__gt=0)
        if self.value() == "low":
            return queryset.filter(retailer_stock__gt=0, retailer_stock__lte=LOW_STOCK)
        if self.value() == "out":
            return queryset.filter(retailer_stock=0)
        return queryset


class ProductImageInline(admin.TabularInline):
    model = ProductImage
    fields = ["preview", "url", "position"]
    readonly_fields = ["preview", "url", "position"]
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = "Pictures (from the retailer's feed)"

    @admin.display(description="")
    def preview(self, obj):
        return format_html('<img src="{}" alt="" class="cat-thumb lg">', obj.url)


class ProductForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = ["sellable", "commission_rate", "min_live_price", "withdrawn_reason"]

    def clean(self):
        data = super().clean()
        product = self.instance
        if data.get("sellable") and not (product.self_operated and product.in_feed):
            raise forms.ValidationError(
                "Only products sold and shipped by the retailer itself, and still in its feed, "
                "can be sold in live rooms."
            )
        return data


@admin.register(Product)
class ProductAdmin(SyncNowMixin, admin.ModelAdmin):
    form = ProductForm
    list_display = [
        "thumbnail", "product", "price", "stock", "own", "feed_state",
    ]  # fmt: skip
    list_display_links = ["thumbnail", "product"]
    list_filter = ["category", "self_operated", "sellable", InStockFilter, "in_feed"]
    search_fields = ["title", "brand", "sku"]
    search_help_text = "Title, brand or retailer SKU"
    list_select_related = ["category"]
    list_per_page = 50
    ordering = ["title", "id"]
    actions = ["allow_live", "withdraw", "sync_now"]
    inlines = [ProductImageInline]
    readonly_fields = [
        "retailer", "sku", "category", "title", "brand", "description", "price_display", "currency",
        "self_operated", "seller_name", "retailer_stock", "in_feed", "feed_updated_at",
        "withdrawn_at", "effective_commission", "price_history", "public_page", "created_at", "updated_at",
    ]  # fmt: skip
    fieldsets = [
        (
            "Live rooms (ours)",
            {
                "fields": [
                    "sellable", ("commission_rate", "effective_commission"), "min_live_price",
                    ("withdrawn_reason", "withdrawn_at"), "public_page",
                ],
            },
        ),
        (
            "From the retailer's feed (read-only)",
            {
                "fields": [
                    ("sku", "retailer"), "title", ("brand", "category"), ("price_display", "currency"),
                    ("self_operated", "seller_name"), ("retailer_stock", "in_feed"), "description", "feed_updated_at",
                ],
                "description": "Owned by the retailer and updated by every sync; change them at the retailer.",
            },
        ),
        ("Price history", {"fields": ["price_history"]}),
        ("Record", {"fields": [("created_at", "updated_at")], "classes": ["collapse"]}),
    ]  # fmt: skip

    class Media:
        css = {"all": ["catalog/admin.css"]}

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("retailer", "category").prefetch_related("images")

    def has_add_permission(self, request):
        return False  # products come from the retailer's feed

    def has_delete_permission(self, request, obj=None):
        return False  # orders refer to products: withdraw instead

    @admin.display(description="")
    def thumbnail(self, obj):
        images = obj.images.all()  # prefetched: one query for the whole page
        if not images:
            return format_html('<span class="cat-thumb empty">{}</span>', (obj.brand or "?")[:1])
        return format_html('<img src="{}" alt="" class="cat-thumb" loading="lazy">', images[0].url)

    @admin.display(description="Product", ordering="title")
    def product(self, obj):
        return format_html(
            '<span class="cat-title">{}</span><span class="cat-sub">{} · <span class="cat-sku">{}</span> · {}</span>',
            obj.title,
            obj.brand or "No brand",
            obj.sku,
            obj.category or "No category",
        )

    @admin.display(description="Self-op.", boolean=True, ordering="self_operated")
    def own(self, obj):
        return obj.self_operated

    @admin.display(description="Price", ordering="list_price")
    def price(self, obj):
        return format_html('<span class="cat-num">{}</span>', money(obj.list_price))

    @admin.display(description="Price")
    def price_display(self, obj):
        return money(obj.list_price)

    @admin.display(description="Stock", ordering="retailer_stock")
    def stock(self, obj):
        if obj.retailer_stock == 0:
            css = "out"
        elif obj.retailer_stock <= LOW_STOCK:
            css = "low"
        else:
            css = "ok"
        return format_html('<span class="cat-stock {}">{}</span>', css, obj.retailer_stock)

    @admin.display(description="Sellable", ordering="-sellable")
    def feed_state(self, obj):
        """Whether it sells in live rooms, and if not, why not."""
        if obj.sellable:
            return format_html('<span class="cat-pill ok">{}</span>', "Selling")
        if not obj.in_feed:
            return format_html('<span class="cat-pill danger" title="{}">{}</span>', obj.withdrawn_reason, "Gone")
        if not obj.self_operated:
            return format_html('<span class="cat-pill muted">{}</span>', "Third-party")
        if obj.withdrawn_reason:
            return format_html('<span class="cat-pill warn" title="{}">{}</span>', obj.withdrawn_reason, "Withdrawn")
        return format_html('<span class="cat-pill">{}</span>', "Off")

    @admin.display(description="Commission in effect")
    def effective_commission(self, obj):
        return f"{obj.effective_commission_rate * 100:.2f}%"

    @admin.display(description="Product page")
    def public_page(self, obj):
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a>', obj.get_absolute_url(), "Open the product page ↗"
        )

    @admin.display(description="Recent prices")
    def price_history(self, obj):
        changes = list(obj.price_changes.all()[:12])
        if not changes:
            return "No price recorded yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td class='cat-num'>{}</td><td class='cat-num'>{}</td></tr>",
            (
                (timezone.localtime(c.changed_at).strftime("%Y-%m-%d %H:%M"), money(c.old_price), money(c.new_price))
                for c in changes
            ),
        )
        lowest = selectors.lowest_price(product=obj, days=30)
        return format_html(
            '<p>Lowest in the last 30 days: <strong>{}</strong></p><table class="cat-history"><thead><tr><th>When</th>'
            "<th>Was</th><th>Now</th></tr></thead><tbody>{}</tbody></table>",
            money(lowest),
            rows,
        )

    @admin.action(description="Allow in live rooms", permissions=["change"])
    def allow_live(self, request, queryset):
        allowed, refused = products_allow_live(product_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{allowed} product(s) can now be sold in live rooms.", messages.SUCCESS)
        if refused:
            self.message_user(
                request,
                f"{refused} product(s) refused: third-party sellers' products, and products no longer in the feed, "
                "can never be sold in live rooms.",
                messages.WARNING,
            )

    @admin.action(description="Withdraw from live rooms", permissions=["change"])
    def withdraw(self, request, queryset):
        count = products_withdraw(product_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} product(s) withdrawn from live rooms.", messages.SUCCESS)

    @admin.action(description="Sync the catalog now (whole feed, not just the selection)", permissions=["change"])
    def sync_now(self, request, queryset):
        run = catalog_sync(trigger=SyncRun.Trigger.ADMIN)
        self.message_user(request, *sync_message(run))


@admin.register(SyncRun)
class SyncRunAdmin(SyncNowMixin, admin.ModelAdmin):
    list_display = [
        "started", "status_badge", "trigger_display", "duration_display", "changes",
    ]  # fmt: skip
    list_filter = ["status", "trigger", "full"]
    list_per_page = 50
    date_hierarchy = "started_at"
    fields = [
        ("status_badge", "trigger", "full"), ("started_at", "finished_at", "duration_display"),
        ("created", "updated", "unchanged"), ("withdrawn", "rejected", "price_changes"),
        ("pages", "cursor_from", "cursor_to"), "message", "error_list",
    ]  # fmt: skip
    readonly_fields = [f for row in fields for f in (row if isinstance(row, tuple) else (row,))]

    class Media:
        css = {"all": ["catalog/admin.css"]}

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Started", ordering="started_at")
    def started(self, obj):
        return timezone.localtime(obj.started_at).strftime("%d %b %H:%M:%S")

    @admin.display(description="Trigger", ordering="trigger")
    def trigger_display(self, obj):
        label = obj.get_trigger_display()
        return format_html("{} <span class='cat-pill muted'>full</span>", label) if obj.full else label

    @admin.display(description="Changes")
    def changes(self, obj):
        parts = [
            (obj.created, "created", "ok"), (obj.updated, "updated", ""), (obj.price_changes, "price changes", ""),
            (obj.withdrawn, "withdrawn", "warn"), (obj.rejected, "rejected", "danger"),
        ]  # fmt: skip
        shown = [(n, label, css) for n, label, css in parts if n]
        if not shown:
            return format_html('<span class="cat-sub">{}</span>', "No changes" if obj.pages else "-")
        return format_html_join(
            " ", '<span class="cat-pill {}">{} {}</span>', ((css, n, label) for n, label, css in shown)
        )

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        css = {"succeeded": "ok", "failed": "danger", "skipped": "muted", "running": "warn"}[obj.status]
        return format_html('<span class="cat-pill {}">{}</span>', css, obj.get_status_display())

    @admin.display(description="Duration")
    def duration_display(self, obj):
        if obj.duration is None:
            return "-"
        return f"{obj.duration.total_seconds():.2f} s"

    @admin.display(description="Rejected entries")
    def error_list(self, obj):
        if not obj.errors:
            return "None."
        return format_html(
            '<table class="cat-history"><thead><tr><th>SKU</th><th>Reason</th></tr></thead><tbody>{}</tbody></table>',
            format_html_join(
                "",
                "<tr><td class='mono'>{}</td><td>{}</td></tr>",
                ((e.get("sku") or "?", e.get("error", "")) for e in obj.errors),
            ),
        )


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "retailer", "commission_rate", "product_count", "sellable_count"]
    list_editable = ["commission_rate"]
    readonly_fields = ["retailer", "code", "name"]
    list_select_related = ["retailer"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(n_products=Count("products"), n_sellable=Count("products", filter=Q(products__sellable=True)))
        )

    def has_add_permission(self, request):
        return False  # categories come from the retailer

    @admin.display(description="Products", ordering="n_products")
    def product_count(self, obj):
        return obj.n_products

    @admin.display(description="Selling live", ordering="n_sellable")
    def sellable_count(self, obj):
        return obj.n_sellable


@admin.register(Retailer)
class RetailerAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "default_commission_rate", "last_synced_at", "feed_cursor", "sync_lease_until"]
    readonly_fields = ["code", "last_synced_at", "feed_cursor", "sync_lease_until", "sync_lease_holder"]
    actions = ["sync_now", "full_resync"]

    def has_add_permission(self, request):
        return False  # created by the first sync

    @admin.action(description="Sync now (changes since the last sync)", permissions=["change"])
    def sync_now(self, request, queryset):
        self.message_user(request, *sync_message(catalog_sync(trigger=SyncRun.Trigger.ADMIN)))

    @admin.action(description="Full resync (read the whole feed, withdraw what is gone)", permissions=["change"])
    def full_resync(self, request, queryset):
        self.message_user(request, *sync_message(catalog_sync(trigger=SyncRun.Trigger.ADMIN, full=True)))


@admin.register(PriceChange)
class PriceChangeAdmin(admin.ModelAdmin):
    list_display = ["changed_at", "product", "old", "new", "sync_run"]
    list_select_related = ["product"]
    search_fields = ["product__title", "product__sku"]
    date_hierarchy = "changed_at"
    list_per_page = 50

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Was", ordering="old_price")
    def old(self, obj):
        return money(obj.old_price)

    @admin.display(description="Now", ordering="new_price")
    def new(self, obj):
        return money(obj.new_price)
