"""The sandbox retailer's clock, driven by Celery beat in the full stack."""

from celery import shared_task

from retailer import fulfilment


@shared_task(name="retailer.tasks.sandbox_tick", ignore_result=True)
def sandbox_tick() -> dict:
    """Ship what is due, decide returns, send callbacks (each step is safe to run twice)."""
    return fulfilment.sandbox_tick()
