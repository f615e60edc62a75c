"""Celery tasks: take ids, re-read, call a service that is safe to run twice.

`deliver` runs with late acknowledgement and is rejected back to the queue if its worker
dies (settings: CELERY_TASK_ACKS_LATE, CELERY_TASK_REJECT_ON_WORKER_LOST, prefetch 1);
retries are due times in the database, queued again by `sweep`. `deliver_submits` is the
confirming transaction's kick: one batch of whatever submits are due.
"""

from celery import shared_task

from fulfilment import services


@shared_task(name="fulfilment.tasks.deliver", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver(message_id: int) -> str:
    return services.outbox_deliver(message_id=message_id)


@shared_task(name="fulfilment.tasks.deliver_submits", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_submits() -> int:
    return services.outbox_deliver_submits()


@shared_task(name="fulfilment.tasks.sweep", ignore_result=True)
def sweep() -> int:
    return services.outbox_sweep()


@shared_task(name="fulfilment.tasks.refund_return", acks_late=True, ignore_result=True)
def refund_return(request_id: int) -> bool:
    return services.return_refund(request_id=request_id)


@shared_task(name="fulfilment.tasks.settle_commissions", ignore_result=True)
def settle_commissions() -> int:
    return services.commissions_settle()
