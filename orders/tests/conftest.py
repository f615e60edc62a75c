import pytest


@pytest.fixture(autouse=True)
def _sandbox_callbacks_off(settings):
    """Tests send the sandbox bank's callbacks themselves."""
    settings.PAYMENT_SANDBOX_CONFIRM_SECONDS = 0
    settings.ORDERS_STOCK_COALESCE_SECONDS = 0.05
