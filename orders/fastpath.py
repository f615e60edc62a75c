"""The room socket's buys without leaving the event loop (PostgreSQL only).

A flash sale's burst is answered here, on a small pool of async PostgreSQL connections
owned by the event loop: no thread hop, no Django ORM, and the buys proceed concurrently
(Channels' single sync thread runs only what falls back to the full path).

* A flash-sale buy is decided by ONE statement (`services.FLASH_RESERVE_SQL`): it re-checks
  the offer (cached per process for a second or two, `FlashOffer`), takes the buyer's
  allowance and THE stock gate, and writes the order, its line and its first audit row.
  Answered here: reserved, or sold out.
* Before that statement, the Redis admission gate (`orders.gate`): a buyer it refuses never
  runs the statement; the refusal is confirmed against PostgreSQL by ONE read for every
  refused buyer waiting in this process (`_confirm`): units left that no buyer in
  flight has claimed, handed out to the refused buyers in arrival order, sale still open,
  the key not used yet. So PostgreSQL sees S reservations and a few reads for N buyers,
  and Redis never has the last word on "sold out".
* The buyers the gate lets through in this process meanwhile are reserved together, up to
  RESERVE_BATCH in one statement (`services.FLASH_RESERVE_BATCH_SQL`, `_reserve`): the
  hot stock row is taken once per batch, not once per buyer. A batch that fails (fewer
  units than Redis said, a buyer twice, a key racing) leaves nothing and each of its
  buyers runs FLASH_RESERVE_SQL alone.
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
from typing import NamedTuple

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
            conn = self.idle.pop() if self.idle else await _connect(conninfo)
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

    async def fill(self, conninfo: str) -> None:
        """Open every connection now: each of these holds a slot while it connects."""

        async def hold_one() -> None:
            async with self.connection(conninfo):
                pass

        await asyncio.gather(*(hold_one() for _ in range(self.size)))

    def drop(self) -> None:
        """The loop is gone (tests make one per test): close the sockets without it."""
        for conn in self.idle:
            with contextlib.suppress(Exception):
                conn.pgconn.finish()
        self.idle.clear()


async def _connect(conninfo: str):
    """Every statement here is prepared on its first run, with a generic plan: planned afresh
    each time the reservation statement took about 2.9 ms here, with its generic plan 0.5 ms."""
    import psycopg

    return await psycopg.AsyncConnection.connect(conninfo, autocommit=True, prepare_threshold=0,
                                                 options="-c plan_cache_mode=force_generic_plan")  # fmt: skip


WARM_SECONDS = 5.0


async def warm() -> None:
    """Open this event loop's connections now (at the web process's start), not in a flash
    sale's first second, when a connect under load took about 0.3 s. Never fails."""
    conninfo = _conninfo()
    if conninfo is None:
        return
    try:
        await asyncio.wait_for(asyncio.gather(_pool().fill(conninfo), _read_pool().fill(conninfo)), WARM_SECONDS)
    except Exception:
        log.warning("could not open the fast path's connections yet; they open on first use", exc_info=True)


_pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_read_pools: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
READ_POOL_SIZE = 2
# Reservations per transaction: the buyers of a batch hear nothing until it commits, and
# while PostgreSQL runs one batch this process answers the buyers of the last one.
RESERVE_BATCH = 100


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
            confirmed = await _confirmations().ask(sale, (user_id, key, quantity))
            if confirmed is None:
                return None
            left, replay = confirmed
            if replay or left is None:
                return None  # the key has its order, or the sale is not open: the full path answers
            if left < quantity:
                return _refused(left)
            ticket, confirmed_left = None, True  # unclaimed units after all (returned ones, or Redis was wrong)
        taken = ticket is not None
        fingerprint = services.buy_fingerprint(shelf_item_id=item_id, quantity=quantity, address_id=address_id,
                                               flash_sale_id=sale_id, card=card,
                                               payment_method=payment_method)  # fmt: skip
        params = services.flash_buy(offer=offer, user_id=user_id, quantity=quantity, address_id=address_id,
                                    key=key, fingerprint=fingerprint, card=card)  # fmt: skip
        if taken:  # with the others who passed the gate in this process meanwhile (`_reserve`)
            outcome = await _reservations().ask(offer, params)  # it settles the claims too
        else:
            async with _pool().connection(conninfo) as conn:
                if not confirmed_left and _left.get(offer.bucket_id, quantity) < quantity:
                    # No gate, and this process saw the bucket run dry: one read answers (or finds units back).
                    sql, params_ = services.precheck_query(user_id=user_id, key=key, shelf_item_id=item_id,
                                                           flash_sale_id=sale_id, room_id=room_id)  # fmt: skip
                    existing_id, left = await (await conn.execute(sql, params_)).fetchone()
                    if existing_id is not None or left is None:
                        return None
                    _left[offer.bucket_id] = left
                    if left < quantity:
                        return _refused(left)
                outcome = await _reserve_one(conn, params)
        if outcome is None or isinstance(outcome, BaseException):
            raise outcome or psycopg.OperationalError("the batch failed")
        if isinstance(outcome, SoldOut):
            left = min(outcome.left, quantity - 1)  # the gate refused: fewer than asked for
            _left[offer.bucket_id] = left
            return _refused(left)  # the units were never there: nothing to give back
    except errors.OrderError:
        return await _not_here(taken, offer, quantity)
    except psycopg.IntegrityError:
        return await _not_here(taken, offer, quantity)  # a duplicate key racing, or a number collision
    except psycopg.Error:
        log.warning("fast buy failed; using the full path", exc_info=True)
        return await _not_here(taken, offer, quantity)
    if not outcome.offer_holds:
        _offers.pop((sale_id, item_id, room_id), None)  # re-read the offer next time
        return await _not_here(taken, offer, quantity)
    if outcome.order_id is None:
        return await _not_here(taken, offer, quantity)  # over the limit, no address, or a replay racing
    _left[offer.bucket_id] = outcome.left
    live.stock_changed(room_id=room_id, item_id=item_id, sale_id=sale_id, left=outcome.left)
    if outcome.sold_out_now:
        asyncio.get_running_loop().run_in_executor(None, _announce_sold_out, room_id, sale_id)
    return services.flash_answer(params, card=card), (outcome.order_id if card is not None else None), card


class Reserved(NamedTuple):
    """What PostgreSQL made of one buyer's reservation: the offer still held (else nothing
    was written), the order (None: over the limit, no usable address, or the key already
    used), units left after it, and whether it sold the sale out."""

    offer_holds: bool
    order_id: int | None
    left: int | None
    sold_out_now: bool


class SoldOut(NamedTuple):
    """PostgreSQL's gate refused: fewer than asked for were left (`left`)."""

    left: int


def _sold_out_in(err) -> SoldOut | None:
    found = _SOLD_OUT_RE.search(str(err))
    return None if found is None else SoldOut(int(found.group(1)))


async def _reserve_one(conn, params: dict) -> Reserved | SoldOut:
    """FLASH_RESERVE_SQL on its own (autocommit)."""
    import psycopg

    try:
        cursor = await conn.execute(services.FLASH_RESERVE_SQL, params)
    except psycopg.errors.InvalidTextRepresentation as err:
        if (refused := _sold_out_in(err)) is None:
            raise
        return refused
    offer_ok, units, left, order_id, gone, _refusal = await cursor.fetchone()
    return Reserved(offer_ok is not None, order_id if units is not None else None, left, gone is not None)


async def _reserve(offer: services.FlashOffer, batch: list[dict]) -> list:
    """The reservations of buyers who passed the Redis gate in this process meanwhile, for
    one offer: ONE statement (`services.FLASH_RESERVE_BATCH_SQL`), so the hot stock row is
    taken once per batch rather than once per buyer. Should it fail (PostgreSQL had fewer
    units than Redis said, a buyer twice in the batch, a key racing, a deadlock), nothing of
    it stays and each buyer is tried on their own. Per buyer: Reserved, SoldOut or the
    error. Their claims at the gate are settled here, once, whatever happened."""
    import psycopg

    try:
        async with _pool().connection(_conninfo()) as conn:
            if len(batch) > 1:
                try:
                    return await _reserve_together(conn, batch)
                except psycopg.Error as err:
                    log.info("a batch of %d reservations rolled back (%s); each on its own", len(batch), err)
            outcomes = []
            for params in batch:
                try:
                    outcomes.append(await _reserve_one(conn, params))
                except psycopg.Error as err:
                    if conn.closed:
                        raise
                    outcomes.append(err)
            return outcomes
    finally:
        await gate.settle(offer.bucket_id, sum(params["qty"] for params in batch))


async def _reserve_together(conn, batch: list[dict]) -> list[Reserved]:
    cursor = await conn.execute(services.FLASH_RESERVE_BATCH_SQL, services.flash_batch_params(batch))
    rows = await cursor.fetchall()
    # Units left after each buyer: after the batch, plus what the buyers after them took.
    left_after = rows[0][3] if rows else None  # the same in every row
    outcomes = []
    for params, (_n, offer_ok, order_id, _left, _gone, _refusal) in zip(reversed(batch), reversed(rows), strict=True):
        outcomes.append(Reserved(offer_ok, order_id, left_after, False))
        if order_id is not None:
            left_after += params["qty"]
    outcomes.reverse()
    if rows and rows[0][4] is not None:  # the batch took the last unit: its last buyer says so
        last = max(i for i, outcome in enumerate(outcomes) if outcome.order_id is not None)
        outcomes[last] = outcomes[last]._replace(sold_out_now=True)
    return outcomes


_reservers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _reservations() -> Batches:
    loop = asyncio.get_running_loop()
    reserver = _reservers.get(loop)
    if reserver is None:
        reserver = _reservers[loop] = Batches(_reserve, limit=RESERVE_BATCH)
    return reserver


async def _not_here(taken: bool, offer, quantity: int) -> None:
    """Not decided here: units taken at the Redis gate go back; the full path answers."""
    if taken:
        await gate.give_back(offer.bucket_id, quantity)
    return None


async def _available(conninfo: str, bucket_id: int) -> int | None:
    async with _read_pool().connection(conninfo) as conn:
        row = await (await conn.execute(services.BUCKET_AVAILABLE_SQL, (bucket_id,))).fetchone()
    return None if row is None else row[0]


CONFIRM_PATIENCE_SECONDS = 0.5  # how long the confirmation waits for the claims in flight to stand still


async def _confirm(sale: tuple[int, int, int, int], asks: list[tuple[int, str, int]]) -> list:
    """Buyers the Redis gate refused, for one sale, in one read: per (user, key, quantity),
    (units left for this buyer, or None when the sale is not open to buyers; this key has an
    order). Batched per event loop (`_confirmations`), so a burst of refusals costs a few
    reads, not one each.

    Units left are PostgreSQL's less those that buyers who passed the gate are reserving
    right now (`gate.net_of_claims`), handed out in arrival order: each buyer sees what the
    buyers before them in this batch left. Units found free (returned ones, or Redis was
    wrong) thus send at most that many units' worth of refused buyers on to PostgreSQL; a
    count that was too high cannot send every refused buyer there, where the first of them
    would take units that buyers who passed the gate earlier hold claims on."""
    from django.utils import timezone

    sale_id, item_id, room_id, bucket_id = sale
    params = {"sale": sale_id, "item": item_id, "room": room_id, "now": timezone.now(),
              "users": [user for user, _key, _qty in asks], "keys": [key for _user, key, _qty in asks]}  # fmt: skip

    async def read():
        async with _read_pool().connection(_conninfo()) as conn:
            return await (await conn.execute(services.SOLD_OUT_CONFIRM_SQL, params)).fetchone()

    (left, replays), before, after = await gate.net_of_claims(bucket_id, read, patience=CONFIRM_PATIENCE_SECONDS)
    replays = set(replays)
    if left is None:
        return [(None, n in replays) for n in range(1, len(asks) + 1)]
    # Claims that stood still: exact. Still moving after the patience, or unknown (Redis
    # failed): the fewer (at worst a few buyers try PostgreSQL for units that others hold
    # claims on, rather than hear "sold out" while units may be free).
    left -= min(before or 0, after or 0)
    answers = []
    for n, (_user, _key, quantity) in enumerate(asks, 1):
        answers.append((left, n in replays))
        if n not in replays and left >= quantity:
            left -= quantity  # this buyer goes on to PostgreSQL for them
    return answers


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
