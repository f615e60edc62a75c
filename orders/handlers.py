"""The room socket's buying messages, registered into streams' handler registry.

    buy               -> buy.result (this socket only): reserved or refused, at once;
                         then order.update when the payment has its answer
    buy.quote         -> buy.quote  (this socket only; counts the viewer as "opened")
    flash_sale.start  -> ack with the sale (host only); the room gets `flash_sale`

Thin: check the shape, call one service in a thread, reply. Errors are answered as a
`buy.result` / `buy.quote` with ok=false, a code and a message a shopper understands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from channels.db import database_sync_to_async
from django.db import close_old_connections
from django.utils import timezone

from orders import errors, fastpath, live, selectors, services
from streams.consumers import register
from streams.services import RoomError

log = logging.getLogger(__name__)

BUY_FIELDS = ("item", "quantity", "address", "card", "key", "sale", "expected_unit_price")


def _login_required(reply_type: str, ref) -> dict:
    return {"type": reply_type, "ref": ref, "ok": False, "code": "login_required", "message": "Log in to buy."}


PAY_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="orders-pay")


def _place(*, user, room_id: int, payload: dict):
    try:
        result = services.order_place(
            user=user, shelf_item_id=payload.get("item"), quantity=payload.get("quantity"),
            address_id=payload.get("address"), payment_method=payload.get("card"),
            idempotency_key=payload.get("key"), flash_sale_id=payload.get("sale"),
            expected_unit_price=payload.get("expected_unit_price"), room_id=room_id, defer_payment=True,
        )  # fmt: skip
    except errors.OrderError as err:
        return {"ok": False, **err.as_dict()}, None, None
    return result.as_dict(), result.order.pk if result.pay_with else None, result.pay_with


def _pay(order_id: int, card) -> dict:
    close_old_connections()
    try:
        return services.order_pay_reserved(order_id=order_id, card=card).as_dict()
    finally:
        close_old_connections()


PAY_QUIET_SECONDS = 0.25  # payments wait for a lull in buys ...
PAY_WAIT_MAX_SECONDS = 5.0  # ... but never longer than this
_last_buy = [0.0]
_buys_in_flight = [0]


_lulls: dict = {}


async def _lull() -> None:
    """One watcher per event loop however many payments wait (a timer each would cost the
    burst thousands of wake-ups a second)."""
    loop = asyncio.get_running_loop()
    watcher = _lulls.get(loop)
    if watcher is None or watcher.done():
        for old in [lp for lp in _lulls if lp.is_closed()]:
            _lulls.pop(old, None)

        async def watch(deadline: float) -> None:
            while loop.time() < deadline and (
                _buys_in_flight[0] > 0 or loop.time() - _last_buy[0] < PAY_QUIET_SECONDS
            ):
                await asyncio.sleep(0.05)

        watcher = _lulls[loop] = loop.create_task(watch(loop.time() + PAY_WAIT_MAX_SECONDS))
    await asyncio.shield(watcher)


async def _settle(consumer, order_id: int, card, ref) -> None:
    """Pay outside the buy's path (and any lock), then tell the buyer on their socket.

    Reservations come first: during a burst (a flash sale's first second) payments wait
    for a lull (no buy still being answered in this process and none arrived for
    PAY_QUIET_SECONDS), up to PAY_WAIT_MAX_SECONDS, so they do not compete with the buys
    still waiting for their answer (a payment's confirmation updates the same hot stock
    row). The reservation holds the units meanwhile."""
    await _lull()
    try:
        answer = await asyncio.get_running_loop().run_in_executor(PAY_POOL, _pay, order_id, card)
    except Exception:
        log.exception("payment for order %s failed", order_id)
        return
    with contextlib.suppress(Exception):  # the buyer may have left; /orders/ has the outcome
        consumer.reply(live.ev_order_update(ref=ref, result=answer))


@register("buy")
async def handle_buy(consumer, payload: dict) -> None:
    ref = payload.get("ref")
    if consumer.user_id is None:
        consumer.reply(_login_required("buy.result", ref))
        return
    _last_buy[0] = asyncio.get_running_loop().time()
    _buys_in_flight[0] += 1
    try:
        placed = await fastpath.place(user_id=consumer.user_id, room_id=consumer.room_id, payload=payload)
        if placed is not None:
            answer, order_id, card = placed
        else:
            answer, order_id, card = await database_sync_to_async(_place)(
                user=consumer.user, room_id=consumer.room_id, payload=payload
            )
    finally:
        _buys_in_flight[0] -= 1
        _last_buy[0] = asyncio.get_running_loop().time()
    consumer.reply(live.ev_buy_result(ref=ref, result=answer))
    if order_id is not None:
        task = asyncio.get_running_loop().create_task(_settle(consumer, order_id, card, ref))
        _PENDING.add(task)
        task.add_done_callback(_PENDING.discard)


_PENDING: set = set()


def _quote(*, user, room_id: int, payload: dict) -> dict:
    quote = selectors.order_quote(user=user, shelf_item_id=payload.get("item"), quantity=payload.get("quantity") or 1,
                                  flash_sale_id=payload.get("sale"), room_id=room_id)  # fmt: skip
    services.product_open_record(user=user, shelf_item_id=quote.item)
    return {"ok": True, **quote.as_dict(), "addresses": selectors.addresses_for_sheet(user=user)}


@register("buy.quote")
async def handle_quote(consumer, payload: dict) -> None:
    ref = payload.get("ref")
    if consumer.user_id is None:
        consumer.reply(_login_required("buy.quote", ref))
        return
    try:
        quote = await database_sync_to_async(_quote)(user=consumer.user, room_id=consumer.room_id, payload=payload)
    except errors.OrderError as err:
        quote = {"ok": False, **err.as_dict()}
    consumer.reply(live.ev_quote(ref=ref, quote=quote))


def _start_sale(*, user, room_id: int, payload: dict):
    starts_in = payload.get("starts_in_seconds", 0)
    if isinstance(starts_in, bool) or not isinstance(starts_in, int) or not 0 <= starts_in <= 86400:
        raise errors.FlashSaleInvalid("Start the sale now or within the next 24 hours.")
    sale = services.flash_sale_start(
        user=user, shelf_item_id=payload.get("item"), sale_price=payload.get("sale_price"),
        quantity=payload.get("quantity"), per_user_limit=payload.get("per_user_limit"),
        duration_seconds=payload.get("duration_seconds"), room_id=room_id,
        starts_at=timezone.now() + timedelta(seconds=starts_in),
    )  # fmt: skip
    return live.flash_sale_payload(sale)


@register("flash_sale.start")
async def handle_flash_sale_start(consumer, payload: dict) -> None:
    if consumer.user_id is None:
        raise RoomError("not_allowed", "Only the room's host can start a flash sale.")
    try:
        sale = await database_sync_to_async(_start_sale)(user=consumer.user, room_id=consumer.room_id, payload=payload)
    except errors.OrderError as err:
        raise RoomError(err.code, err.message)
    consumer.ack(payload, sale=sale)
