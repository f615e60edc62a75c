"""The room socket's buys without leaving the event loop (PostgreSQL only).

A flash sale's burst is answered here, on a small pool of async PostgreSQL connections
owned by the event loop: no thread hop, no Django ORM, and the buys proceed concurrently
(Channels' single sync thread runs only what falls back to the full path).

* A flash-sale buy is ONE statement (`services.FLASH_RESERVE_SQL`): it re-checks the offer
  (cached per process for a second or two, `FlashOffer`), takes the buyer's allowance and
  THE stock gate, and writes the order, its line and its first audit row. Answered here:
  reserved, or sold out.
* Before that statement, the Redis admission gate (`orders.gate`): a buyer it refuses never
  runs the statement; the refusal is confirmed against PostgreSQL by ONE read for every
  refused buyer waiting in this process (`_confirm`): units left that no buyer in
  flight has claimed, sale still open, the key not used yet. So PostgreSQL sees S
  reservations and a few reads for N buyers, and Redis never has the last word on "sold
  out".
* Without Redis (down, or not configured): once this process has seen a bucket run dry, a
  buy first asks one indexed read (`services.precheck_query`).
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

from orders import errors, gate, live, services
from orders.batches import Batches
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
        self.reading: dict[tuple, asyncio.Future] = {}  # offers being read, for the buyers waiting on them

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
_read_pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
READ_POOL_SIZE = 2


def _pool(pools: weakref.WeakKeyDictionary = _pools, size: int | None = None) -> _Pool:
    """This event loop's reservation connections (the loop's own, so nothing hops threads)."""
    loop = asyncio.get_running_loop()
    pool = pools.get(loop)
    if pool is None:
        for old_loop, old in list(pools.items()):
            if old_loop.is_closed():
                old.drop()
                pools.pop(old_loop, None)
        pool = pools[loop] = _Pool(size or pool_size())
    return pool


def _read_pool() -> _Pool:
    """This loop's connections for the short reads (an offer, a counter's seed, the sold-out
    confirmation): they must not queue behind reservations waiting for the hot stock row."""
    return _pool(_read_pools, READ_POOL_SIZE)


# --- per-process hints ---------------------------------------------------------------------

_offers: dict[tuple[int, int, int], tuple[float, services.FlashOffer | None]] = {}
_left: dict[int, int] = {}  # bucket id -> units left as this process last saw them (a hint, never the answer)
_SOLD_OUT_RE = re.compile(re.escape(services.SOLD_OUT_MARK) + r"(-?\d+)")


async def _offer(conninfo: str, *, sale_id: int, item_id: int, room_id: int) -> services.FlashOffer | None:
    """The offer from this process's cache; on a miss ONE read, which every buyer arriving
    meanwhile waits for (at a sale's first second they all miss at once)."""
    key = (sale_id, item_id, room_id)
    cached = _offers.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    pool = _read_pool()
    pending = pool.reading.get(key)
    if pending is not None:
        return await asyncio.shield(pending)
    pending = pool.reading[key] = asyncio.get_running_loop().create_future()
    try:
        async with pool.connection(conninfo) as conn:
            cursor = await conn.execute(services.FLASH_OFFER_SQL, (sale_id, item_id, room_id))
            row = await cursor.fetchone()
        offer = services.flash_offer(sale_id=sale_id, item_id=item_id, room_id=room_id, row=row)
        if len(_offers) > 1000:
            _offers.clear()
        _offers[key] = (time.monotonic() + OFFER_TTL_SECONDS, offer)
        pending.set_result(offer)
        return offer
    except Exception as exc:
        pending.set_exception(exc)
        pending.exception()  # retrieved: no "never retrieved" warning when nobody else waited
        raise
    except BaseException:
        pending.cancel()
        raise
    finally:
        pool.reading.pop(key, None)


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
    offer, taken, confirmed_left = None, False, False
    try:
        offer = await _offer(conninfo, sale_id=sale_id, item_id=item_id, room_id=room_id)
        if offer is None or quantity > offer.per_user_limit:
            return None
        if expected not in (None, "") and services._money(expected) != offer.unit_price:
            return None
        ticket = await gate.take(offer.bucket_id, quantity, seed=lambda: _available(conninfo, offer.bucket_id))
        if ticket is not None and ticket[0] == gate.REFUSED:
            # Redis says too few are left: PostgreSQL confirms (one read for every buyer
            # waiting for it in this process) before the buyer hears it.
            sale = (offer.sale_id, offer.item_id, offer.room_id, offer.bucket_id)
            confirmed = await _confirmations().ask(sale, (user_id, key))
            if confirmed is None:
                return None
            left, replay = confirmed
            if replay or left is None:
                return None  # the key has its order, or the sale is not open: the full path answers
            if left < quantity:
                return _refused(left)
            ticket, confirmed_left = None, True  # unclaimed units after all (returned ones, or Redis was wrong)
        taken = ticket is not None
        async with _pool().connection(conninfo) as conn:
            if not taken and not confirmed_left and _left.get(offer.bucket_id, quantity) < quantity:
                # No gate, and this process saw the bucket run dry: one read answers (or finds units back).
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
                return _refused(left)  # the units were never there: nothing to give back
            offer_ok, _addr, units, left, order_id, line_id, gone, _mark = await cursor.fetchone()
    except errors.OrderError:
        return await _not_here(taken, offer, quantity)
    except psycopg.IntegrityError:
        return await _not_here(taken, offer, quantity)  # a duplicate key racing, or a number collision
    except psycopg.Error:
        log.warning("fast buy failed; using the full path", exc_info=True)
        return await _not_here(taken, offer, quantity)
    finally:
        if taken:  # PostgreSQL has answered this claim, whatever it said
            await gate.settle(offer.bucket_id, quantity)
    if offer_ok is None:
        _offers.pop((sale_id, item_id, room_id), None)  # re-read the offer next time
        return await _not_here(taken, offer, quantity)
    if units is None or order_id is None:
        return await _not_here(taken, offer, quantity)  # over the limit (or a replay racing)
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


async def _not_here(taken: bool, offer, quantity: int) -> None:
    """Not decided here: units taken at the Redis gate go back; the full path answers."""
    if taken:
        await gate.give_back(offer.bucket_id, quantity)
    return None


async def _available(conninfo: str, bucket_id: int) -> int | None:
    async with _read_pool().connection(conninfo) as conn:
        row = await (await conn.execute(services.BUCKET_AVAILABLE_SQL, (bucket_id,))).fetchone()
    return None if row is None else row[0]


async def _confirm(sale: tuple[int, int, int, int], asks: list[tuple[int, str]]) -> list:
    """Buyers the Redis gate refused, for one sale, in one read: per (user, key), (units left
    that no buyer in flight has claimed, or None when the sale is not open to buyers; this
    key has an order). Batched per event loop (`_confirmations`), so a burst of refusals
    costs a few reads, not one each."""
    from django.utils import timezone

    sale_id, item_id, room_id, bucket_id = sale
    params = {"sale": sale_id, "item": item_id, "room": room_id, "now": timezone.now(),
              "users": [user for user, _key in asks], "keys": [key for _user, key in asks]}  # fmt: skip
    async with _read_pool().connection(_conninfo()) as conn:
        left, replays = await (await conn.execute(services.SOLD_OUT_CONFIRM_SQL, params)).fetchone()
    # Units that buyers who passed the gate are reserving right now are not free: read
    # AFTER PostgreSQL, so a claim settling in between is not subtracted twice (the error,
    # if any, sends a buyer to PostgreSQL for nothing).
    if left is not None:
        left -= await gate.in_flight(bucket_id)
    replays = set(replays)
    return [(left, n in replays) for n in range(1, len(asks) + 1)]


_confirmers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _confirmations() -> Batches:
    loop = asyncio.get_running_loop()
    confirmer = _confirmers.get(loop)
    if confirmer is None:
        confirmer = _confirmers[loop] = Batches(_confirm)
    return confirmer


def _announce_sold_out(room_id: int, sale_id: int) -> None:
    from django.db import connection

    try:
        live.flash_sold_out(room_id=room_id, sale_id=sale_id)
    except Exception:
        log.exception("sold-out event for sale %s failed", sale_id)
    finally:
        connection.close()
