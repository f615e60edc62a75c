import logging

from django.apps import AppConfig

log = logging.getLogger(__name__)


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders"

    def ready(self):
        # The room socket's buy / buy.quote / flash_sale.start messages join streams' registry.
        # A broken streams.consumers must not take every other process (admin, workers) down.
        try:
            import streams.consumers  # noqa: F401
        except ImportError:
            log.exception("streams.consumers did not import: the room socket's buy messages are not registered")
            return
        from orders import handlers  # noqa: F401
