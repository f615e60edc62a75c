"""Celery tasks: take ids, re-read, call a service that is safe to run twice."""

import threading

from celery import shared_task

from orders import services
from orders.payments import signed_callback


@shared_task(name="orders.tasks.expire_reservations")
def expire_reservations() -> int:
    """Beat, every few seconds: expire unpaid reservations whose time is up, and give a
    finished flash sale's unsold units back to the shelf."""
    expired = services.reservations_sweep()
    services.flash_sales_settle_due()
    return expired


@shared_task(name="orders.tasks.expire_reservation")
def expire_reservation(order_id: int) -> bool:
    return services.reservation_expire(order_id=order_id)


@shared_task(name="orders.tasks.refund_late_payment")
def refund_late_payment(payment_id: int) -> bool:
    return services.refund_late_payment(payment_id=payment_id)


@shared_task(name="orders.tasks.refund_cancelled")
def refund_cancelled(payment_id: int) -> bool:
    return services.refund_cancelled(payment_id=payment_id)


@shared_task(name="orders.tasks.sandbox_send_callback")
def sandbox_send_callback(reference: str, outcome: str) -> int:
    """The sandbox bank confirms: a signed callback, through the same check a real one meets."""
    from django.db import connection

    body, headers = signed_callback(reference=reference, outcome=outcome)
    try:
        result = services.payment_callback_handle(
            body=body, signature=headers["X-Payment-Signature"], timestamp=headers["X-Payment-Timestamp"]
        )
        return result.status
    finally:
        if threading.current_thread() is not threading.main_thread():
            connection.close()  # a timer thread's own connection (in-process mode)
