"""The room socket's buys without leaving the event loop (PostgreSQL only).

A flash sale's burst is answered here, on a small pool of async PostgreSQL connections
owned by the event loop: no thread hop, no Django ORM, and the buys proceed concurrently
(Channels' single sync thread runs only what falls back to the full path).

* A flash-sale buy is ONE statement (`services.FLASH_RESERVE_SQL`): it re-checks the offer
  (cached per process for a second or two, `FlashOffer`), takes the buyer's allowance and
  THE stock gate, and writes the order, its line and its first audit row. Answered here:
  reserved, or sold out.
* Once this process has seen a bucket run dry, a buy first asks the one indexed read
  (`services.precheck_query`): the sold-out answer costs one read and writes nothing.
* Anything else (a replayed key, over the limit, a room not live, a sale not started, a
  changed price, a bad address or card, a regular shelf buy, SQLite) returns None and the
  caller takes the full path through `services.order_place`, which gives the precise answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import weakref

from django.conf import settings

from orders import errors, live, services
from orders.payments import parse_card

log = logging.getLogger(__name__)

POOL_SIZE = 4  # per web process; the hot bucket row serialises the gate anyway
OFFER_TTL_SECONDS = 2.0


def pool_size() -> int:
    return int(getattr(settings, "ORDERS_FASTPATH_POOL_SIZE", POOL_SIZE))


def _conninfo() -> str | None:
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        return None
    parts = {"dbname": db["NAME"], "user": db.get("USER"), "password": db.get("PASSWORD"), "host": db.get("HOST"),
             "port": db.get("PORT")}  # fmt: skip
    return " ".join(f"{k}={v}" for k, v in parts.items() if v)


class _Pool:
    """At most `size` autocommit connections of one event loop, opened on first need."""

    def __init__(self, size: int):
        self.size = size
        self.idle: list = []
        self.slots = asyncio.Semaphore(size)

    @contextlib.asynccontextmanager
    async def connection(self, conninfo: str):
        import psycopg

        async with self.slots:
            conn = self.idle.pop() if self.idle else await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
            try:
                yield conn
            except BaseException:
                if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    with contextlib.suppress(Exception):
                        await conn.close()
                    raise
                self.idle.append(conn)
                raise
            self.idle.append(conn)

    def drop(self) -> None:
        """The loop is gone (tests make one per test): close the sockets without it."""
        for conn in self.idle:
            with contextlib.suppress(Exception):
                conn.pgconn.finish()
        self.idle.clear()


_pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _pool() -> _Pool:
    loop = asyncio.get_running_loop()
    pool = _pools.get(loop)
    if pool is None:
        for old_loop, old in list(_pools.items()):
            if old_loop.is_closed():
                old.drop()
                _pools.pop(old_loop, None)
        pool = _pools[loop] = _Pool(pool_size())
    return pool


# --- per-process hints ---------------------------------------------------------------------

_offers: dict[tuple[int, int, int], tuple[float, services.FlashOffer | None]] = {}
_left: dict[int, int] = {}  # bucket id -> units left as this process last saw them (a hint, never the answer)
_SOLD_OUT_RE = re.compile(re.escape(services.SOLD_OUT_MARK) + r"(-?\d+)")


async def _offer(conn, *, sale_id: int, item_id: int, room_id: int) -> services.FlashOffer | None:
    key = (sale_id, item_id, room_id)
    now = time.monotonic()
    cached = _offers.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    cursor = await conn.execute(services.FLASH_OFFER_SQL, (sale_id, item_id, room_id))
    offer = services.flash_offer(sale_id=sale_id, item_id=item_id, room_id=room_id, row=await cursor.fetchone())
    if len(_offers) > 1000:
        _offers.clear()
    _offers[key] = (now + OFFER_TTL_SECONDS, offer)
    return offer


# --- the buy -------------------------------------------------------------------------------


async def precheck(*, user_id: int, key: str, shelf_item_id: int, flash_sale_id: int | None,
                   room_id: int) -> tuple[int | None, int | None] | None:  # fmt: skip
    """(order id for this key, units left) or None when the fast read is not available."""
    import psycopg

    conninfo = _conninfo()
    if conninfo is None:
        return None
    sql, params = services.precheck_query(user_id=user_id, key=key, shelf_item_id=shelf_item_id,
                                          flash_sale_id=flash_sale_id, room_id=room_id)  # fmt: skip
    try:
        async with _pool().connection(conninfo) as conn:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchone()
    except psycopg.Error:
        log.warning("fast precheck failed; using the full path", exc_info=True)
        return None


def _refused(left: int) -> tuple[dict, None, None]:
    return {"ok": False, **services._sold_out(max(0, left)).as_dict()}, None, None


async def place(*, user_id: int, room_id: int, payload: dict) -> tuple[dict, int | None, object] | None:
    """(the buyer's answer, order id to pay, card) for a buy decided here, else None."""
    import psycopg

    conninfo = _conninfo()
    if conninfo is None:
        return None
    try:
        key = services._clean_key(payload.get("key"))
        item_id = services._positive_int(payload.get("item"), what="product")
        quantity = services._positive_int(payload.get("quantity"), what="quantity", maximum=services.MAX_QUANTITY)
        sale_id = services._optional_id(payload.get("sale"), what="flash sale")
        address_id = services._optional_id(payload.get("address"), what="address")
    except errors.OrderError:
        return None  # the full path gives the precise error

    if sale_id is None or address_id is None:  # a shelf buy: the sold-out read, then the full path
        found = await precheck(user_id=user_id, key=key, shelf_item_id=item_id, flash_sale_id=sale_id,
                               room_id=room_id)  # fmt: skip
        if found is not None and found[0] is None and found[1] is not None and found[1] < quantity:
            return _refused(found[1])
        return None

    payment_method = payload.get("card")
    card = parse_card(payment_method) if payment_method not in (None, "") else None
    if payment_method not in (None, "") and card is None:
        return None
    expected = payload.get("expected_unit_price")
    try:
        async with _pool().connection(conninfo) as conn:
            offer = await _offer(conn, sale_id=sale_id, item_id=item_id, room_id=room_id)
            if offer is None or quantity > offer.per_user_limit:
                return None
            if expected not in (None, "") and services._money(expected) != offer.unit_price:
                return None
            if _left.get(offer.bucket_id, quantity) < quantity:
                # This process saw the bucket run dry: one read answers (or finds units back).
                sql, params = services.precheck_query(user_id=user_id, key=key, shelf_item_id=item_id,
                                                      flash_sale_id=sale_id, room_id=room_id)  # fmt: skip
                existing_id, left = await (await conn.execute(sql, params)).fetchone()
                if existing_id is not None or left is None:
                    return None
                _left[offer.bucket_id] = left
                if left < quantity:
                    return _refused(left)
            fingerprint = services.buy_fingerprint(shelf_item_id=item_id, quantity=quantity, address_id=address_id,
                                                   flash_sale_id=sale_id, card=card,
                                                   payment_method=payment_method)  # fmt: skip
            params, order, line = services.flash_buy(offer=offer, user_id=user_id, quantity=quantity,
                                                     address_id=address_id, key=key, fingerprint=fingerprint,
                                                     card=card)  # fmt: skip
            try:
                cursor = await conn.execute(services.FLASH_RESERVE_SQL, params)
            except psycopg.errors.InvalidTextRepresentation as err:
                found = _SOLD_OUT_RE.search(str(err))
                if found is None:
                    raise
                left = min(int(found.group(1)), quantity - 1)  # the gate refused: fewer than asked for
                _left[offer.bucket_id] = left
                return _refused(left)
            offer_ok, _addr, units, left, order_id, line_id, gone, _mark = await cursor.fetchone()
    except errors.OrderError:
        return None
    except psycopg.IntegrityError:
        return None  # a duplicate key racing this one, or a number collision: the full path replays
    except psycopg.Error:
        log.warning("fast buy failed; using the full path", exc_info=True)
        return None
    if offer_ok is None:
        _offers.pop((sale_id, item_id, room_id), None)  # re-read the offer next time
        return None
    if units is None or order_id is None:
        return None  # over the limit (or a replay racing): the full path answers
    order.pk, line.pk = order_id, line_id
    order._state.adding = line._state.adding = False
    _left[offer.bucket_id] = left
    live.stock_changed(room_id=room_id, item_id=item_id, sale_id=sale_id, left=left)
    if gone is not None:
        asyncio.get_running_loop().run_in_executor(None, _announce_sold_out, room_id, sale_id)
    if card is not None:
        result = services.PlaceResult(True, "processing", "Reserved for you. Taking the payment…", order,
                                      lines=[line], pay_with=card)  # fmt: skip
        return result.as_dict(), order_id, card
    result = services.PlaceResult(True, "reserved", "Reserved for you. Pay to confirm the order.", order, lines=[line])
    return result.as_dict(), None, None


def _announce_sold_out(room_id: int, sale_id: int) -> None:
    from django.db import connection

    try:
        live.flash_sold_out(room_id=room_id, sale_id=sale_id)
    except Exception:
        log.exception("sold-out event for sale %s failed", sale_id)
    finally:
        connection.close()
