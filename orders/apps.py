from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders"

    def ready(self):
        # The room socket's buy / buy.quote / flash_sale.start messages (streams' registry).
        from orders import handlers  # noqa: F401
