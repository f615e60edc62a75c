"""The room socket's buying messages, registered into streams' handler registry.

    buy               -> buy.result (this socket only)
    buy.quote         -> buy.quote  (this socket only; counts the viewer as "opened")
    flash_sale.start  -> ack with the sale (host only); the room gets `flash_sale`

Thin: check the shape, call one service in a thread, reply. Errors are answered as a
`buy.result` / `buy.quote` with ok=false, a code and a message a shopper understands.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from channels.db import database_sync_to_async
from django.utils import timezone

from orders import errors, live, selectors, services
from streams.consumers import register
from streams.services import RoomError

log = logging.getLogger(__name__)

BUY_FIELDS = ("item", "quantity", "address", "card", "key", "sale", "expected_unit_price")


def _login_required(reply_type: str, ref) -> dict:
    return {"type": reply_type, "ref": ref, "ok": False, "code": "login_required", "message": "Log in to buy."}


@register("buy")
async def handle_buy(consumer, payload: dict) -> None:
    ref = payload.get("ref")
    if consumer.user_id is None:
        consumer.reply(_login_required("buy.result", ref))
        return
    try:
        result = await database_sync_to_async(services.order_place)(
            user=consumer.user, shelf_item_id=payload.get("item"), quantity=payload.get("quantity"),
            address_id=payload.get("address"), payment_method=payload.get("card"),
            idempotency_key=payload.get("key"), flash_sale_id=payload.get("sale"),
            expected_unit_price=payload.get("expected_unit_price"), room_id=consumer.room_id,
        )  # fmt: skip
        answer = await database_sync_to_async(result.as_dict)()
    except errors.OrderError as err:
        answer = {"ok": False, **err.as_dict()}
    consumer.reply(live.ev_buy_result(ref=ref, result=answer))


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
