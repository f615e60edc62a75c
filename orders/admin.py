"""Staff views of orders, their audit trail, payments, stock and flash sales, and per-room sales."""

from django.contrib import admin
from django.db.models import Count, Q, Sum
from django.utils.html import format_html

from orders.models import (
    FlashSale,
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    PaymentCallback,
    RoomSales,
    StockBucket,
)
from orders.selectors import CONFIRMED


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ("title", "sku", "quantity", "unit_price", "list_price", "line_total", "commission_rate",
              "commission_amount", "flash_sale")  # fmt: skip
    readonly_fields = fields


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    fields = ("at", "from_status", "to_status", "actor_kind", "actor", "reason")
    readonly_fields = fields


class PaymentInline(admin.StackedInline):
    model = Payment
    extra = 0
    can_delete = False
    readonly_fields = ("gateway", "reference", "status", "amount", "currency", "card_label", "decline_reason", "raw",
                       "created_at", "updated_at")  # fmt: skip

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    """Orders change state only through services (the state machine), never by editing here."""

    list_display = ("number", "buyer", "room", "status", "total", "currency", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("number", "buyer__username", "room__title")
    list_select_related = ("buyer", "room")
    date_hierarchy = "created_at"
    inlines = [OrderLineInline, PaymentInline, OrderEventInline]
    readonly_fields = [f.name for f in Order._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(OrderEvent)
class OrderEventAdmin(admin.ModelAdmin):
    list_display = ("order", "from_status", "to_status", "actor_kind", "actor", "reason", "at")
    list_filter = ("to_status", "actor_kind")
    search_fields = ("order__number",)
    list_select_related = ("order", "actor")
    readonly_fields = ("order", "from_status", "to_status", "actor_kind", "actor", "reason", "at")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ("reference", "order", "status", "amount", "currency", "card_label", "created_at")
    list_filter = ("status", "gateway")
    search_fields = ("reference", "order__number")
    list_select_related = ("order",)
    readonly_fields = [f.name for f in Payment._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(PaymentCallback)
class PaymentCallbackAdmin(admin.ModelAdmin):
    list_display = ("delivery_id", "reference", "outcome", "result", "received_at")
    search_fields = ("delivery_id", "reference")
    readonly_fields = ("delivery_id", "reference", "outcome", "result", "received_at")

    def has_add_permission(self, request):
        return False


@admin.register(StockBucket)
class StockBucketAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "shelf_item", "initial", "available", "reserved", "sold", "updated_at")
    list_filter = ("kind",)
    list_select_related = ("shelf_item__product",)
    readonly_fields = ("kind", "shelf_item", "initial", "available", "reserved", "sold", "updated_at")

    def has_add_permission(self, request):
        return False


@admin.register(FlashSale)
class FlashSaleAdmin(admin.ModelAdmin):
    list_display = ("id", "room", "shelf_item", "sale_price", "quantity", "left", "per_user_limit", "starts_at",
                    "ends_at", "sold_out_at")  # fmt: skip
    list_select_related = ("room", "shelf_item__product", "bucket")
    readonly_fields = [f.name for f in FlashSale._meta.fields]

    @admin.display(description="left")
    def left(self, obj):
        return obj.bucket.available

    def has_add_permission(self, request):
        return False


@admin.register(RoomSales)
class RoomSalesAdmin(admin.ModelAdmin):
    """Per room: confirmed orders, units, GMV and the hosts' commission."""

    list_display = ("title", "status", "host", "orders_count", "units", "gmv", "commission")
    list_filter = ("status",)
    search_fields = ("title", "host__handle")
    list_select_related = ("host",)

    def get_queryset(self, request):
        confirmed = Q(orders__status__in=CONFIRMED)
        return (
            super()
            .get_queryset(request)
            .annotate(
                _orders=Count("orders", filter=confirmed, distinct=True),
                _gmv=Sum("orders__total", filter=confirmed),
                _commission=Sum("orders__commission_total", filter=confirmed),
            )
        )

    @admin.display(description="orders", ordering="_orders")
    def orders_count(self, obj):
        return obj._orders

    @admin.display(description="units")
    def units(self, obj):
        return (
            OrderLine.objects.filter(order__room=obj, order__status__in=CONFIRMED).aggregate(n=Sum("quantity"))["n"]
            or 0
        )

    @admin.display(description="GMV", ordering="_gmv")
    def gmv(self, obj):
        return format_html("¥{}", obj._gmv or "0.00")

    @admin.display(description="host commission", ordering="_commission")
    def commission(self, obj):
        return format_html("¥{}", obj._commission or "0.00")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
