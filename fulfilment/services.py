"""Writes for fulfilment: the outbox and its dispatcher, after-sales, the commission ledger.

The guarantees (docs/fulfilment.md):

* A confirmed order gets its `submit_order` outbox row in the confirming transaction
  (`order_confirmed`, called from orders' fulfilment seam). One row per order: the
  row's `key` is unique.
* `outbox_deliver` (one message) and `outbox_deliver_submits` (the kick's drainer) claim
  due rows with `SELECT ... FOR UPDATE SKIP LOCKED` and a lease, submits up to
  `batch_size()` at once, commit, call the retailer with NO transaction open (each order
  number is the retailer's idempotency key, so a repeat never ships twice), then apply
  the answers with the orders locked first and the rows second (the lock order used
  everywhere).
* The kick after commit queues one drainer while none is queued or running (a flag in
  Redis), not a task per order.
* A failure schedules the next attempt (exponential backoff with full jitter); after
  `FULFILMENT_MAX_ATTEMPTS` (or a refusal that retrying cannot fix) the row is dead and
  waits for staff (`outbox_retry`). A sender that dies loses its lease; the sweep takes
  the row again.
* `outbox_sweep` (Celery beat, every 2 s) queues every due row: rows whose kick was lost
  (the process died after commit, Redis was down), retries, expired leases.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import time
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from catalog.retailer_client import RetailerError, RetailerRejected, get_retailer_client
from fulfilment import live
from fulfilment.models import AfterSalesRequest, CommissionEntry, DeliveryAttempt, Handoff, OutboxMessage
from orders import errors
from orders.models import Order, OrderEvent, OrderLine, Payment
from orders.state import transition, transition_many
from streams.models import Notification

log = logging.getLogger(__name__)

S = Order.Status
M = OutboxMessage.Status
K = OutboxMessage.Kind
# The forward path an order takes once paid; callbacks only ever move an order along it.
CHAIN = [S.PAID, S.SENT_TO_RETAILER, S.ACCEPTED, S.PACKED, S.SHIPPED, S.DELIVERED]
CANCELLABLE = (S.PAID, S.SENT_TO_RETAILER, S.ACCEPTED, S.PACKED)


def worker_name() -> str:
    """host:pid of the process doing the work (read per call: pool children fork after import)."""
    return f"{socket.gethostname()}:{os.getpid()}"[:80]


def _setting(name: str, default):
    return getattr(settings, name, default)


def max_attempts() -> int:
    return int(_setting("FULFILMENT_MAX_ATTEMPTS", 8))


def backoff_delay(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: base * 2^(n-1), capped, with full jitter in [50%, 100%]."""
    base = float(_setting("FULFILMENT_BACKOFF_SECONDS", 2))
    cap = float(_setting("CELERY_MAX_RETRY_DELAY", 600))
    ceiling = min(cap, base * 2 ** max(0, attempts - 1))
    return ceiling * (0.5 + random.random() / 2)


def lease_seconds() -> float:
    return float(_setting("FULFILMENT_LEASE_SECONDS", 60))


def batch_size() -> int:
    """At most this many submits go to the retailer in one call."""
    return max(1, min(100, int(_setting("FULFILMENT_BATCH_SIZE", 20))))


def requeue_seconds() -> float:
    """A queued message not picked up within this long is queued again by the sweep (its
    task was lost: Redis restarted, or a killed worker held it unacknowledged)."""
    return float(_setting("FULFILMENT_REQUEUE_SECONDS", 15))


# --- the outbox --------------------------------------------------------------------------


def outbox_enqueue(*, order: Order, kind: str, key: str, payload: dict) -> None:
    """Write a message in the caller's transaction; it is sent once that commits."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox_enqueue() must run inside the transaction that makes the change")
    now = timezone.now()
    if kind == K.SUBMIT_ORDER:
        # The hot path: one INSERT (a second confirm of the same order adds nothing), and the
        # kick names no message: it sends whatever submits are due.
        OutboxMessage.objects.bulk_create(
            [OutboxMessage(key=key, kind=kind, order=order, payload=payload, next_attempt_at=now, queued_at=now)],
            ignore_conflicts=True,
        )
        transaction.on_commit(kick_submits)
        return
    message, created = OutboxMessage.objects.get_or_create(
        key=key, defaults={"kind": kind, "order": order, "payload": payload, "next_attempt_at": now, "queued_at": now}
    )
    if created:
        message_id = message.pk
        transaction.on_commit(lambda: kick(message_id=message_id))


def kick(*, message_id: int) -> None:
    """Queue the send now. Losing this (crash, Redis down) loses nothing: the sweep sends it."""
    if not _setting("FULFILMENT_DISPATCH_ON_COMMIT", True):
        return
    from fulfilment import tasks

    try:
        tasks.deliver.delay(message_id)
    except Exception:
        log.warning("could not queue outbox message %s; the sweep will send it", message_id, exc_info=True)


# The submit kick's flag: set while a drainer (`outbox_deliver_submits`) is queued or
# running, so a busy second queues one task, not one per order. A drainer refreshes it
# each round; if its task is lost the flag lapses after this long and kicks queue again.
KICK_HOLD_MS = 5000
# A drainer hands over to a fresh task after this long (tasks have a time limit).
DRAIN_SECONDS = 20.0


def kick_flag() -> str:
    return f"{settings.REDIS_PREFIX}:fulfilment:submit-kick"


def _flag(op: str) -> bool:
    """Set ("take": only if free), refresh or clear the kick flag. Where tasks run in the
    calling process (the embedded default, most tests) no drainer waits in a queue, so
    there is nothing to share: always True."""
    from config.celery import app
    from streams.fanout import sync_redis

    if not settings.REDIS_URL or app.conf.task_always_eager:
        return True
    if op == "take":
        return bool(sync_redis().set(kick_flag(), 1, nx=True, px=KICK_HOLD_MS))
    if op == "refresh":
        return bool(sync_redis().set(kick_flag(), 1, px=KICK_HOLD_MS))
    return bool(sync_redis().delete(kick_flag()))


def kick_submits() -> None:
    """After a submit commits: make sure a drainer will see it. Queues one unless one is
    queued or running already (it claims again before it stops). Losing this kick (crash,
    Redis down) loses nothing: the sweep sends the submit."""
    if not _setting("FULFILMENT_DISPATCH_ON_COMMIT", True):
        return
    try:
        if not _flag("take"):
            return
    except Exception:
        log.warning("could not take the kick flag; the sweep will send the submit", exc_info=True)
        return
    if not _queue_drainer("submit"):
        _flag_quietly("clear")  # no drainer behind the flag: let the next kick try


def _queue_drainer(why: str) -> bool:
    from fulfilment import tasks

    try:
        tasks.deliver_submits.delay()
    except Exception:
        log.warning("could not queue a %s drainer; the sweep covers what is left", why, exc_info=True)
        return False
    return True


def outbox_deliver_submits(*, now: datetime | None = None, seconds: float = DRAIN_SECONDS) -> int:
    """The kick's task: send due submits, a batch per call to the retailer, until none
    are due. Under a steady stream one drainer claims whatever arrived while its last
    batch was out, so the batch grows with the load and the tasks do not. A full batch
    also queues a helper, so idle workers share a backlog. After `seconds` a fresh task
    takes over. Returns how many were sent.

    Where tasks run in the calling process (the embedded default) it sends one batch and
    returns: the buyer's request that kicked it is not kept waiting for everyone's
    submits; the next kick or the sweep takes the rest."""
    from config.celery import app

    inline = app.conf.task_always_eager
    sent, deadline, released = 0, time.monotonic() + seconds, False
    while True:
        messages = _claim_submits(None, now or timezone.now())
        if not messages and not released:
            # Clear the flag, then look once more: a submit that committed before the flag
            # went is seen now; one that commits after it queues a drainer of its own.
            _flag_quietly("clear")
            released = True
            messages = _claim_submits(None, now or timezone.now())
        if not messages:
            # A due submit this last claim skipped is held by another drainer, which sends
            # it, or (rarely) by a moment's other lock on its order; then the sweep sends it.
            return sent
        if not released:
            _flag_quietly("refresh")
        if len(messages) == batch_size() and not inline:
            _queue_drainer("helper")  # for the backlog
        _send_submits(messages)
        sent += len(messages)
        if inline:
            return sent
        if time.monotonic() > deadline:
            _queue_drainer("successor")  # the flag stays held
            return sent


def _flag_quietly(op: str) -> bool:
    try:
        return _flag(op)
    except Exception:
        log.warning("could not %s the kick flag; it lapses by itself", op, exc_info=True)
        return False


def _due(now: datetime) -> Q:
    """A message a sender may take now: pending and due, or held by a sender gone silent."""
    return Q(status=M.PENDING, next_attempt_at__lte=now) | Q(status=M.IN_FLIGHT, lease_until__lt=now)


def _take(messages: list[OutboxMessage], now: datetime) -> str:
    """Put locked, due messages in flight under one new claim token (one UPDATE). A message
    whose last sender went silent (killed, lost) has that attempt recorded as failed."""
    lost = [
        DeliveryAttempt(
            message=m,
            number=m.attempts,
            started_at=m.updated_at,
            outcome=DeliveryAttempt.Outcome.RETRY,
            error="The sender stopped before finishing (lease expired); sending again.",
        )
        for m in messages
        if m.status == M.IN_FLIGHT
    ]
    DeliveryAttempt.objects.bulk_create(lost)
    token = secrets.token_hex(8)
    lease = now + timedelta(seconds=lease_seconds())
    OutboxMessage.objects.filter(pk__in=[m.pk for m in messages]).update(
        status=M.IN_FLIGHT, attempts=F("attempts") + 1, claim_token=token, lease_until=lease, updated_at=timezone.now()
    )
    for m in messages:
        m.status, m.attempts, m.claim_token, m.lease_until = M.IN_FLIGHT, m.attempts + 1, token, lease
    return token


def _claim(message_id: int, now: datetime) -> tuple[OutboxMessage, str] | None:
    """Take one due message (cancel, return) with a lease; a message another sender holds
    right now is skipped."""
    with transaction.atomic():
        message = OutboxMessage.objects.select_for_update(skip_locked=True).filter(_due(now), pk=message_id).first()
        if message is None:
            return None  # not due, done, dead, or another sender holds it right now
        return message, _take([message], now)


def _claim_submits(message_id: int | None, now: datetime) -> list[OutboxMessage]:
    """Take this submit (if given) and other due ones, `batch_size()` in all, in one
    transaction that also moves their paid orders to sent_to_retailer. Locks orders first,
    then messages (the lock order used everywhere). This message's order is waited for;
    the others are skipped if anyone holds them, so two senders never wait on each other."""
    with transaction.atomic():
        orders = {}
        if message_id is not None:
            own = (
                Order.objects.select_for_update()
                .filter(pk=Subquery(OutboxMessage.objects.filter(pk=message_id).values("order_id")[:1]))
                .first()
            )
            if own is None:
                return []
            orders[own.pk] = own
        if batch_size() > len(orders):
            # The oldest due, then SKIP LOCKED: two claimers at once pick the same rows and
            # the later one gets what is left of them, often nothing. That is on purpose:
            # the one that has them claims again after sending, so on two busy cores one
            # drainer carries big batches instead of several carrying small ones.
            others = (
                OutboxMessage.objects.filter(_due(now), kind=K.SUBMIT_ORDER)
                .exclude(order_id__in=list(orders))
                .order_by("next_attempt_at")
                .values("order_id")[: batch_size() - len(orders)]
            )
            orders.update(
                (order.pk, order)
                for order in Order.objects.select_for_update(skip_locked=True).filter(pk__in=Subquery(others))
            )
        messages = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(_due(now), kind=K.SUBMIT_ORDER, order_id__in=list(orders))
            .order_by("pk")
        )
        if not messages:
            return []
        _take(messages, now)
        sent = [orders[m.order_id] for m in messages if orders[m.order_id].status == S.PAID]
        transition_many(
            moves=[(order, "Handed to the retailer's warehouse") for order in sent],
            to=S.SENT_TO_RETAILER,
            actor_kind=OrderEvent.Actor.SYSTEM,
        )
        for order in sent:
            _on_commit_changed(order.pk)
        return messages


def _on_commit_changed(order_id: int) -> None:
    transaction.on_commit(lambda: live.order_changed(order_id=order_id))


def _send(message: OutboxMessage) -> dict:
    client = get_retailer_client()
    p = message.payload
    if message.kind == K.CANCEL_ORDER:
        return client.cancel_order(key=p["key"])
    if message.kind == K.REQUEST_RETURN:
        return client.request_return(key=p["key"], order_key=p["order_key"], lines=p["lines"], reason=p["reason"])
    raise RetailerRejected(f"unknown outbox kind {message.kind}", code="unknown_kind")


def _submission(message: OutboxMessage) -> dict:
    p = message.payload
    return {k: p[k] for k in ("key", "lines", "address", "total", "currency")}


def _call(send) -> tuple[object, str, bool, datetime, int]:
    """Run one call to the retailer: (answer or None, error, permanent?, started, duration_ms)."""
    started = timezone.now()
    t0 = time.monotonic()
    answer, error, permanent = None, "", False
    try:
        answer = send()
    except RetailerRejected as exc:
        error, permanent = f"{exc.code}: {exc.message}", True
    except RetailerError as exc:
        error = f"{exc.code}: {exc.message}"
    except Exception as exc:
        log.exception("a call to the retailer failed")
        error = f"{type(exc).__name__}: {exc}"
    return answer, error, permanent, started, int((time.monotonic() - t0) * 1000)


def outbox_deliver(*, message_id: int, now: datetime | None = None) -> str:
    """Send one message if it is due. Safe to run twice, concurrently, or after a crash.

    A submit goes in a batch with other due submits (one call to the retailer, each order
    still keyed by its own number); the answer is this message's outcome."""
    now = now or timezone.now()
    kind = OutboxMessage.objects.filter(_due(now), pk=message_id).values_list("kind", flat=True).first()
    if kind is None:
        return "skipped"  # not due, done, dead, withdrawn: nothing to lock
    if kind == K.SUBMIT_ORDER:
        return _send_submits(_claim_submits(message_id, now)).get(message_id, "skipped")
    claimed = _claim(message_id, now)
    if claimed is None:
        return "skipped"
    message, _token = claimed
    answer, error, permanent, started, duration_ms = _call(lambda: _send(message))
    outcomes = _finish(
        messages=[message],
        answers=[answer],
        error=error,
        permanent=permanent,
        started=started,
        duration_ms=duration_ms,
    )
    return outcomes[message_id]


def _send_submits(messages: list[OutboxMessage]) -> dict[int, str]:
    """One call to the retailer for claimed submits, each keyed by its order number."""
    if not messages:
        return {}
    client = get_retailer_client()
    answers, error, _permanent, started, duration_ms = _call(
        lambda: client.submit_orders([_submission(m) for m in messages])
    )
    # A refusal of the whole call (a 4xx: a signature or clock problem, a rate limit, a
    # retailer that does not know the batch endpoint yet) says nothing against any one
    # order: each is retried on its backoff, and dead only after the usual attempts. An
    # order the retailer refuses to read on its own is dead at once (`_finish`).
    return _finish(
        messages=messages,
        answers=answers or [None] * len(messages),
        error=error,
        permanent=False,
        started=started,
        duration_ms=duration_ms,
    )


def _is_order_answer(answer: dict) -> bool:
    order = answer.get("order")
    return isinstance(order, dict) and isinstance(order.get("status"), str) and bool(order["status"])


# What `_finish` may change on a message (the payload, key and order never change).
FINISH_FIELDS = [
    "status",
    "lease_until",
    "claim_token",
    "result",
    "done_at",
    "last_error",
    "next_attempt_at",
    "queued_at",
    "updated_at",
]


def _finish(
    *,
    messages: list[OutboxMessage],
    answers: list[dict | None],
    error: str,
    permanent: bool,
    started: datetime,
    duration_ms: int,
) -> dict[int, str]:
    """Record one call's answers, one per message sent, in one transaction: an attempt
    each, and the answer applied to its order. {message id: outcome}."""
    now = timezone.now()
    with transaction.atomic():
        # lock order: orders, then messages
        orders = {
            o.pk: o
            for o in Order.objects.select_for_update().filter(pk__in={m.order_id for m in messages}).order_by("pk")
        }
        current = {
            m.pk: m
            for m in OutboxMessage.objects.select_for_update().filter(pk__in=[m.pk for m in messages]).order_by("pk")
        }
        outcomes, attempts, done, changed = {}, [], [], []
        for sent, answer in zip(messages, answers, strict=True):
            message = current[sent.pk]
            item_error, item_permanent = error, permanent
            if answer is not None and isinstance(answer.get("error"), dict):  # the retailer could not read this one
                item_error = f"{answer['error'].get('code', 'rejected')}: {answer['error'].get('message', '')}"
                item_permanent, answer = True, None
            elif answer is not None and sent.kind == K.SUBMIT_ORDER and not _is_order_answer(answer):
                item_error, answer = "bad_answer: the retailer's answer for this order has no order status", None
            attempt = DeliveryAttempt(
                message=message,
                number=message.attempts,
                started_at=started,
                duration_ms=duration_ms,
                worker=worker_name(),
                error=item_error[:2000],
            )
            attempts.append(attempt)
            if message.claim_token != sent.claim_token or message.status != M.IN_FLIGHT:
                attempt.outcome = DeliveryAttempt.Outcome.RETRY
                attempt.error = (item_error + " (finished after another sender took over)").strip()
                outcomes[message.pk] = "superseded"
                continue
            message.lease_until, message.claim_token, message.updated_at = None, "", now
            if answer is not None:
                attempt.outcome = DeliveryAttempt.Outcome.OK
                message.status, message.result, message.done_at, message.last_error = M.DONE, answer, now, ""
                done.append((orders[message.order_id], message, answer))
            elif item_permanent or message.attempts >= max_attempts():
                attempt.outcome = DeliveryAttempt.Outcome.DEAD
                message.status, message.last_error = M.DEAD, item_error
                log.error(
                    "outbox message %s (%s) dead after %d attempts: %s",
                    message.pk,
                    message.key,
                    message.attempts,
                    item_error,
                )
            else:
                attempt.outcome = DeliveryAttempt.Outcome.RETRY
                message.status, message.last_error = M.PENDING, item_error
                message.next_attempt_at = now + timedelta(seconds=backoff_delay(message.attempts))
                message.queued_at = None  # the sweep queues it when due
            changed.append(message)
            outcomes[message.pk] = attempt.outcome
        # The usual outcome in two statements (a CASE over every field of every message
        # costs more Python than the rest of the batch); the rare ones one by one.
        ok = [m for m in changed if m.status == M.DONE]
        OutboxMessage.objects.filter(pk__in=[m.pk for m in ok]).update(
            status=M.DONE, lease_until=None, claim_token="", done_at=now, last_error="", updated_at=now
        )
        OutboxMessage.objects.bulk_update(ok, ["result"])
        for message in changed:
            if message.status != M.DONE:
                message.save(update_fields=FINISH_FIELDS)
        DeliveryAttempt.objects.bulk_create(attempts)
        _apply_answers(done)
    return outcomes


def outbox_sweep(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Queue every message that is due (lost kicks, retries, expired leases), and finish
    refunds whose task was lost. Returns how many messages were queued."""
    from fulfilment import tasks

    now = now or timezone.now()
    not_queued = Q(queued_at__isnull=True) | Q(queued_at__lt=now - timedelta(seconds=requeue_seconds()))
    ids = list(
        OutboxMessage.objects.filter(_due(now), not_queued)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    # Mark first: a sweep that dies half-way re-queues the rest after the requeue delay.
    OutboxMessage.objects.filter(pk__in=ids).update(queued_at=now)
    for message_id in ids:
        tasks.deliver.delay(message_id)
    _sweep_refunds(now=now)
    return len(ids)


def _sweep_refunds(*, now: datetime) -> None:
    from fulfilment import tasks
    from orders import tasks as order_tasks

    grace = now - timedelta(seconds=30)
    for request_id in AfterSalesRequest.objects.filter(
        status=AfterSalesRequest.Status.APPROVED, decided_at__lte=grace
    ).values_list("pk", flat=True)[:200]:
        tasks.refund_return.delay(request_id)
    stuck = (
        Payment.objects.filter(
            status=Payment.Status.SUCCEEDED,
            order__status=S.CANCELLED,
            order__outbox_messages__isnull=False,
            order__closed_at__lte=grace,
        )
        .values_list("pk", flat=True)
        .distinct()[:200]
    )
    for payment_id in stuck:
        order_tasks.refund_cancelled.delay(payment_id)


def outbox_retry(*, message_id: int, by=None) -> bool:
    """Staff's one action for a dead-lettered message: fresh attempts, sent now."""
    with transaction.atomic():
        updated = OutboxMessage.objects.filter(pk=message_id, status=M.DEAD).update(
            status=M.PENDING,
            attempts=0,
            next_attempt_at=timezone.now(),
            queued_at=timezone.now(),
            updated_at=timezone.now(),
        )
        if updated:
            log.info("outbox message %s retried by %s", message_id, getattr(by, "username", "system"))
            transaction.on_commit(lambda: kick(message_id=message_id))
    return bool(updated)


# --- applying the retailer's answers -----------------------------------------------------


def advance(*, order: Order, to: str, reason: str) -> bool:
    """Move a locked order forward along CHAIN to `to` (through any step it skipped).
    Never backwards, never out of a closed state. True if it moved."""
    if order.status not in CHAIN or to not in CHAIN:
        return False
    here, there = CHAIN.index(order.status), CHAIN.index(to)
    if there <= here:
        return False
    for step in CHAIN[here + 1 : there + 1]:
        transition(
            order=order,
            to=step,
            actor_kind=OrderEvent.Actor.RETAILER,
            reason=reason if step == to else "Reported by the retailer with a later step",
        )
    order_id = order.pk
    transaction.on_commit(lambda: live.order_changed(order_id=order_id))
    return True


def _apply_answers(done: list[tuple[Order, OutboxMessage, dict]]) -> None:
    """Apply the retailer's answers to their locked orders. The usual one (a submit
    accepted, the order sent and not yet heard of by callback) is applied to all such
    orders at once: one INSERT of hand-offs, one move to accepted; any other answer
    order by order."""
    usual = [
        (order, answer)
        for order, message, answer in done
        if message.kind == K.SUBMIT_ORDER
        and order.status == S.SENT_TO_RETAILER
        and (answer.get("order") or {}).get("status") == S.ACCEPTED
    ]
    known = set(Handoff.objects.filter(order__in=[order for order, _ in usual]).values_list("order_id", flat=True))
    usual = [(order, answer) for order, answer in usual if order.pk not in known]
    now, ids = timezone.now(), {order.pk for order, _ in usual}
    handoffs = [
        Handoff(order=order, retailer_order_id=str(answer["order"].get("id", ""))[:40], accepted_at=now)
        for order, answer in usual
    ]
    Handoff.objects.bulk_create(handoffs)
    transition_many(
        moves=[
            (order, f"Accepted by the retailer (order {handoff.retailer_order_id})")
            for (order, _), handoff in zip(usual, handoffs, strict=True)
        ],
        to=S.ACCEPTED,
        actor_kind=OrderEvent.Actor.RETAILER,
    )
    for order_id in ids:
        _on_commit_changed(order_id)
    rest = [(order, message, answer) for order, message, answer in done if order.pk not in ids]
    _lock_stock_rows([order for order, _, _ in rest])
    for order, message, answer in rest:
        _apply_answer(order=order, message=message, answer=answer)


def _lock_stock_rows(orders: list[Order]) -> None:
    """Before several orders of one batch may give their units back (a refusal, a
    cancellation) in one transaction: lock every stock row that could touch, in one fixed
    order (the buyers' allowances, then the buckets, as `_move_units` takes them for a
    line), so two batches refusing orders of the same rooms never wait on each other
    crosswise."""
    from orders.models import PurchaseAllowance, StockBucket

    if len(orders) < 2:
        return
    pairs = sorted(set(OrderLine.objects.filter(order__in=orders).values_list("order__buyer_id", "bucket_id")))
    if not pairs:
        return
    allowances = Q()
    for user_id, bucket_id in pairs:
        allowances |= Q(user_id=user_id, bucket_id=bucket_id)
    list(PurchaseAllowance.objects.select_for_update().filter(allowances).order_by("user_id", "bucket_id"))
    list(StockBucket.objects.select_for_update().filter(pk__in={b for _, b in pairs}).order_by("pk"))


def _apply_answer(*, order: Order, message: OutboxMessage, answer: dict) -> None:
    if message.kind == K.SUBMIT_ORDER:
        info = answer.get("order") or {}
        status = info.get("status")
        if status in ("refused", "cancelled"):
            refusal = info.get("refusal") or {}
            text = refusal.get("message") or "The retailer could not take the order."
            _close_with_refund(
                order=order,
                reason=f"Refused by the retailer: {text}"[:200],
                buyer_text=f"Sorry, the retailer couldn't ship order {order.number} "
                f"(out of stock at the warehouse). Your payment is being refunded.",
            )
            return
        retailer_order_id = str(info.get("id", ""))[:40]
        # The order row is locked, so nothing creates this order's Handoff meanwhile (a
        # callback that got here first made one; its accepted_at stays if already set).
        now = timezone.now()
        if not Handoff.objects.filter(order=order).update(
            retailer_order_id=retailer_order_id, accepted_at=Coalesce("accepted_at", Value(now))
        ):
            Handoff.objects.create(order=order, retailer_order_id=retailer_order_id, accepted_at=now)
        target = status if status in CHAIN else S.ACCEPTED
        advance(order=order, to=S.ACCEPTED, reason=f"Accepted by the retailer (order {retailer_order_id})")
        if target != S.ACCEPTED:
            advance(order=order, to=target, reason="Reported by the retailer")
        return
    if message.kind == K.CANCEL_ORDER:
        request = AfterSalesRequest.objects.filter(
            order=order, kind=AfterSalesRequest.Kind.CANCEL, status=AfterSalesRequest.Status.REQUESTED
        ).first()
        if answer.get("cancelled"):
            if request is not None:
                request.status = AfterSalesRequest.Status.APPROVED
                request.decided_at = timezone.now()
                request.note = "Cancelled by the retailer before shipping."
                request.save(update_fields=["status", "decided_at", "note"])
            if order.status in CANCELLABLE:
                _close_with_refund(
                    order=order,
                    reason="Cancelled at your request before shipping",
                    buyer_text=f"Order {order.number} is cancelled. Your refund is on its way.",
                )
        elif request is not None:
            request.status = AfterSalesRequest.Status.REJECTED
            request.decided_at = timezone.now()
            request.note = "It had already left the warehouse. You can ask for a return once it's delivered."
            request.save(update_fields=["status", "decided_at", "note"])
            _tell_buyer(order, f"Order {order.number} had already shipped, so it couldn't be cancelled.")
        return
    if message.kind == K.REQUEST_RETURN:
        pass  # registered; the decision arrives by callback


def _close_with_refund(*, order: Order, reason: str, buyer_text: str) -> None:
    """Cancel a paid order on the retailer's word: stock back, commission reversed, refund, buyer told."""
    from orders import services as order_services
    from orders import tasks as order_tasks

    if order.status not in CANCELLABLE:
        return
    transition(order=order, to=S.CANCELLED, actor_kind=OrderEvent.Actor.RETAILER, reason=reason)
    order_services._unsell_lines(order)  # the room's units go back on sale
    commission_reverse(order=order, reason="Order cancelled")
    payment_id = Payment.objects.filter(order=order).values_list("pk", flat=True).first()
    if payment_id is not None:
        transaction.on_commit(lambda: order_tasks.refund_cancelled.delay(payment_id))
    order_services._after_release(order)
    _tell_buyer(order, buyer_text)


def _tell_buyer(order: Order, text: str, *, toast: bool = False) -> None:
    Notification.objects.create(
        user_id=order.buyer_id,
        kind=Notification.Kind.ORDER,
        room_id=order.room_id,
        text=text[:200],
        url=order.get_absolute_url(),
    )
    order_id = order.pk
    transaction.on_commit(lambda: live.order_changed(order_id=order_id))
    if toast:
        transaction.on_commit(lambda: live.buyer_toast(order_id=order_id, text=text))


# --- the seam: called by orders inside the confirming transaction -------------------------


def order_confirmed(*, order: Order) -> None:
    """Write the hand-off message and the commission entries, in the caller's transaction."""
    lines = list(order.lines.all())
    payload = {
        "key": order.number,
        "lines": [
            {"sku": ln.sku, "title": ln.title, "quantity": ln.quantity, "unit_price": str(ln.unit_price)}
            for ln in lines
        ],
        "address": order.address,
        "total": str(order.total),
        "currency": order.currency,
    }
    commission_record(order=order, lines=lines)
    outbox_enqueue(order=order, kind=K.SUBMIT_ORDER, key=f"submit:{order.number}", payload=payload)


def submit_withdraw(*, order: Order) -> None:
    """The buyer cancels a paid order (order row locked by the caller). Allowed only while
    the hand-off has not started; otherwise the retailer must be asked (`cancel_request`)."""
    message = OutboxMessage.objects.select_for_update().filter(order=order, kind=K.SUBMIT_ORDER).first()
    if message is not None:
        if message.status != M.PENDING or message.attempts:
            raise errors.IllegalTransition("The retailer already has this order; cancelling asks the retailer first.")
        message.status = M.WITHDRAWN
        message.save(update_fields=["status", "updated_at"])
    commission_reverse(order=order, reason="Order cancelled")


def cancel_request(*, user, order_number: str, reason: str = "") -> Order:
    """The buyer cancels before shipment: at once if the retailer hasn't got it yet,
    otherwise the retailer is asked the reliable way and its answer closes the order."""
    from orders import services as order_services

    order = Order.objects.filter(buyer=user, number=order_number).first()
    if order is None:
        raise errors.NotFound("We couldn't find that order.")
    if order.status in (S.PENDING_PAYMENT, S.PAID):
        try:
            return order_services.order_cancel(user=user, order_number=order_number, reason=reason)
        except errors.IllegalTransition:
            pass  # the hand-off has started: ask the retailer
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if order.status not in CANCELLABLE:
            raise errors.IllegalTransition(
                "It has already shipped, so it can't be cancelled. You can ask for a return once it's delivered."
            )
        open_request = AfterSalesRequest.objects.filter(order=order, status=AfterSalesRequest.Status.REQUESTED)
        if not open_request.exists():
            AfterSalesRequest.objects.create(
                order=order,
                kind=AfterSalesRequest.Kind.CANCEL,
                key=f"cancel-{order.number}-{secrets.token_hex(3)}",
                reason=(reason or "Cancelled by the buyer")[:200],
                amount=order.total,
                requested_by=user,
            )
            outbox_enqueue(
                order=order, kind=K.CANCEL_ORDER, key=f"cancel:{order.number}", payload={"key": order.number}
            )
    return order


def return_window_open(order: Order, now: datetime | None = None) -> bool:
    handoff = Handoff.objects.filter(order=order).first()
    now = now or timezone.now()
    return bool(
        order.status == S.DELIVERED and handoff and handoff.return_window_ends and handoff.return_window_ends > now
    )


def return_request(
    *, user, order_number: str, reason, line_ids=None, now: datetime | None = None
) -> AfterSalesRequest:
    """After delivery, within the window: ask the retailer to take (some) lines back."""
    if not isinstance(reason, str) or not reason.strip():
        raise errors.InvalidRequest("Tell us why you're returning it.")
    reason = reason.strip()[:200]
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(buyer=user, number=order_number).first()
        if order is None:
            raise errors.NotFound("We couldn't find that order.")
        if order.status != S.DELIVERED:
            raise errors.IllegalTransition("Returns open once the order is delivered.")
        if not return_window_open(order, now):
            raise errors.IllegalTransition("The return window for this order has closed.")
        if AfterSalesRequest.objects.filter(order=order, status__in=["requested", "approved"]).exists():
            raise errors.IllegalTransition("There's already a return in progress for this order.")
        returned = set()
        for req in AfterSalesRequest.objects.filter(order=order, kind="return", status="refunded"):
            returned.update(line["line"] for line in req.lines)
        lines = [ln for ln in order.lines.all() if ln.pk not in returned]
        if line_ids:
            try:
                wanted = {int(x) for x in line_ids}
            except (TypeError, ValueError):
                raise errors.InvalidRequest("Choose the items to return.")
            lines = [ln for ln in lines if ln.pk in wanted]
            if len(lines) != len(wanted):
                raise errors.InvalidRequest("Choose items from this order.")
        if not lines:
            raise errors.InvalidRequest("Everything in this order has already been returned.")
        request = AfterSalesRequest.objects.create(
            order=order,
            kind=AfterSalesRequest.Kind.RETURN,
            key=f"ret-{order.number}-{secrets.token_hex(3)}",
            reason=reason,
            requested_by=user,
            amount=sum((ln.line_total for ln in lines), Decimal("0.00")),
            lines=[{"line": ln.pk, "sku": ln.sku, "quantity": ln.quantity, "title": ln.title} for ln in lines],
        )
        outbox_enqueue(
            order=order,
            kind=K.REQUEST_RETURN,
            key=f"return:{request.key}",
            payload={
                "key": request.key,
                "order_key": order.number,
                "reason": reason,
                "lines": [{"sku": ln.sku, "quantity": ln.quantity} for ln in lines],
            },
        )
        order_id = order.pk
        transaction.on_commit(lambda: live.order_changed(order_id=order_id))
    return request


def return_refund(*, request_id: int) -> bool:
    """Refund an approved return through the payment gateway. Idempotent (a refunded
    request is left alone); the gateway call happens with no lock held."""
    from orders.payments import get_gateway

    request = AfterSalesRequest.objects.select_related("order__payment").filter(pk=request_id).first()
    if request is None or request.status != AfterSalesRequest.Status.APPROVED:
        return False
    payment = getattr(request.order, "payment", None)
    if payment is not None:
        get_gateway().refund(
            reference=payment.reference,
            amount=request.amount,
            currency=payment.currency,
            idempotency_key=f"return:{request.pk}",
        )
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=request.order_id)
        request = AfterSalesRequest.objects.select_for_update().get(pk=request_id)
        if request.status != AfterSalesRequest.Status.APPROVED:
            return False
        request.status = AfterSalesRequest.Status.REFUNDED
        request.refunded_at = timezone.now()
        request.save(update_fields=["status", "refunded_at"])
        line_ids = [line["line"] for line in request.lines]
        commission_reverse(order=order, line_ids=line_ids, reason="Returned and refunded")
        refunded = set()
        for req in AfterSalesRequest.objects.filter(order=order, kind="return", status="refunded"):
            refunded.update(line["line"] for line in req.lines)
        if refunded >= set(order.lines.values_list("pk", flat=True)) and order.status == S.DELIVERED:
            transition(
                order=order,
                to=S.REFUNDED,
                actor_kind=OrderEvent.Actor.SYSTEM,
                reason=f"Return approved; ¥{request.amount} refunded to your card",
            )
            Payment.objects.filter(order=order, status=Payment.Status.SUCCEEDED).update(
                status=Payment.Status.REFUNDED, decline_reason="Refunded after a return.", updated_at=timezone.now()
            )
        _tell_buyer(order, f"Your return for order {order.number} is approved: ¥{request.amount} refunded.")
    return True


# --- the commission ledger ----------------------------------------------------------------


def commission_record(*, order: Order, lines: list[OrderLine] | None = None) -> list[CommissionEntry]:
    host_id = order.room.host_id
    entries = [
        CommissionEntry(
            line=ln,
            order=order,
            host_id=host_id,
            room_id=order.room_id,
            rate=ln.commission_rate,
            base=ln.line_total,
            amount=ln.commission_amount,
            currency=order.currency,
        )
        for ln in (lines if lines is not None else order.lines.all())
    ]
    return CommissionEntry.objects.bulk_create(entries, ignore_conflicts=True)


def commission_reverse(*, order: Order, reason: str, line_ids: list[int] | None = None) -> int:
    entries = CommissionEntry.objects.filter(order=order).exclude(status=CommissionEntry.Status.REVERSED)
    if line_ids is not None:
        entries = entries.filter(line_id__in=line_ids)
    return entries.update(
        status=CommissionEntry.Status.REVERSED, reversed_at=timezone.now(), reversal_reason=reason[:120]
    )


def commissions_settle(*, now: datetime | None = None) -> int:
    """Settle pending commission whose return window has closed with no return open."""
    now = now or timezone.now()
    due = CommissionEntry.objects.filter(status=CommissionEntry.Status.PENDING, settle_after__lte=now).exclude(
        order__after_sales__status__in=["requested", "approved"]
    )
    return CommissionEntry.objects.filter(pk__in=list(due.values_list("pk", flat=True)[:5000])).update(
        status=CommissionEntry.Status.SETTLED, settled_at=now
    )
