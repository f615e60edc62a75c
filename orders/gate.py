"""A flash sale's admission gate in Redis, in front of PostgreSQL's.

In a flash sale's first second thousands of buyers arrive for a few units. PostgreSQL
stays the truth: a unit is reserved only by the conditional UPDATE inside
`services.FLASH_RESERVE_SQL`, so nothing here can oversell. What Redis adds is a cheap
first answer for the many who cannot win, so that PostgreSQL sees S reservations and a
few batched reads instead of N reservation statements:

* per stock bucket, a counter of the units still worth trying for (`<prefix>:gate:<bucket>`),
  seeded from the bucket's `available` less the units in flight (below), and kept for
  `TTL_MS`; then the next buy seeds it again from PostgreSQL. That is how returned units
  (an expired reservation, a declined card) and anything Redis got wrong come back, within
  `TTL_MS` at most;
* `take` (one Lua script, atomic, `TAKE_LUA`): enough left -> the units are taken and the
  buy goes on to PostgreSQL; not enough -> refused, with what the counter says is left.
  The buyers waiting in one process go to Redis together: while one script call is in
  flight the next arrivals gather, and the next call decides all of them in arrival order
  (one round trip for a burst, not one per buyer and a connection each);
* units taken here count as *in flight* (`<prefix>:gate:<bucket>:inflight`) until
  PostgreSQL has answered the buyer who took them (`settle`); a claim a dead process never
  settled stops counting `INFLIGHT_TTL_MS` after the bucket's last take;
* a buyer who took units here but whose reservation did not happen for another reason than
  the stock (a replayed key, over the limit, a changed offer) gives them back (`give_back`);
* a refusal here is *confirmed* against PostgreSQL before the buyer hears "sold out"
  (`orders.fastpath`, one read for every refused buyer waiting in the process): "sold out"
  only when PostgreSQL's units left, minus those in flight (`net_of_claims`) and those the
  buyers before them in the same read were sent for, are fewer than asked for. Redis may
  send a buyer to PostgreSQL for nothing, but does not tell one "sold out" while
  PostgreSQL has units no buyer is reserving (but for a batch caught between its commit
  and its settle, see `net_of_claims`).

When Redis cannot be reached every call answers None and the caller goes straight to
PostgreSQL (the gate is skipped for `DOWN_SECONDS` rather than timing out on every buy).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable

from django.conf import settings

from orders.batches import Batches

log = logging.getLogger(__name__)

TTL_MS = 2000  # how long a seeded counter lives before PostgreSQL is asked again
DOWN_SECONDS = 5.0  # after a Redis error, how long to skip the gate
TIMEOUT_SECONDS = 1.0  # one call to Redis, connecting included

INFLIGHT_TTL_MS = 5000  # claims a dead process never settled stop counting this long after the last take

# KEYS[1] the counter, KEYS[2] units taken here whose reservation has not finished yet;
# ARGV[1] INFLIGHT_TTL_MS, then the units each waiting buyer wants, in arrival order.
# -> {-1} not seeded | {taken?, left after} per buyer, flattened: {1, 4, 0, 4, ...}
TAKE_LUA = """
local left = redis.call('GET', KEYS[1])
if not left then return {-1} end
left = tonumber(left)
local start, out = left, {}
for i = 2, #ARGV do
  local qty = tonumber(ARGV[i])
  if qty <= left then left = left - qty; out[2 * i - 3] = 1 else out[2 * i - 3] = 0 end
  out[2 * i - 2] = left
end
if left < start then
  redis.call('DECRBY', KEYS[1], start - left)
  redis.call('INCRBY', KEYS[2], start - left)
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
return out
"""

# KEYS[1] the in-flight count; ARGV[1] units whose reservation has finished (never below 0).
SETTLE_LUA = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0') - tonumber(ARGV[1])
if n > 0 then redis.call('SET', KEYS[1], n, 'KEEPTTL') else redis.call('DEL', KEYS[1]) end
return math.max(n, 0)
"""

# Only while the counter lives: a counter seeded after the claim settled already counts the
# units (one seeded while it was in flight does not, and gets them here).
GIVE_BACK_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
return -1
"""

TAKEN, REFUSED = 1, 0

Seed = Callable[[], Awaitable[int | None]]


def counter_key(bucket_id: int) -> str:
    return f"{settings.REDIS_PREFIX}:gate:{bucket_id}"


def in_flight_key(bucket_id: int) -> str:
    return f"{settings.REDIS_PREFIX}:gate:{bucket_id}:inflight"


class _Gate:
    """One event loop's Redis client, and the buyers waiting for its next call."""

    def __init__(self):
        import redis.asyncio as aredis

        self.client = aredis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
        )
        self.take = self.client.register_script(TAKE_LUA)
        self.give_back = self.client.register_script(GIVE_BACK_LUA)
        self.settle = self.client.register_script(SETTLE_LUA)
        self.batches = Batches(self.decide)

    async def decide(self, bucket_id: int, asks: list[tuple[int, Seed]]) -> list[tuple[int, int] | None]:
        """Per (quantity, seed) in arrival order: (TAKEN | REFUSED, left), or None: ask PostgreSQL."""
        import redis

        keys = [counter_key(bucket_id), in_flight_key(bucket_id)]
        args = [INFLIGHT_TTL_MS, *(quantity for quantity, _seed in asks)]
        try:
            for _ in range(3):
                out = await asyncio.wait_for(self.take(keys=keys, args=args), TIMEOUT_SECONDS)
                if out != [-1]:
                    return [(int(out[i]), int(out[i + 1])) for i in range(0, len(out), 2)]
                # Units claimed by buyers still reserving are in PostgreSQL's count but not free.
                # Should the claims move under the read, the larger count: units hidden until the
                # counter lapses are found by the sold-out confirmation, while units offered twice
                # would fail a whole batch of reservations.
                available, before, after = await net_of_claims(bucket_id, asks[0][1])
                if before is None or after is None:
                    break  # the claims could not be read: better no counter than one that offers them again
                if available is not None:  # NX: another process may have seeded it a moment ago
                    await asyncio.wait_for(self.client.set(keys[0], max(0, available - max(before, after)),
                                                           px=TTL_MS, nx=True), TIMEOUT_SECONDS)  # fmt: skip
        except (TimeoutError, redis.RedisError, OSError):
            _failed("take")
        return [None] * len(asks)  # lapsing faster than it is seeded, or Redis failed


_gates: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_down_until = [0.0]


def _gate() -> _Gate | None:
    if not settings.REDIS_URL or not settings.ORDERS_REDIS_GATE:
        return None
    if time.monotonic() < _down_until[0]:
        return None
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = _Gate()
    return gate


def _failed(what: str) -> None:
    if time.monotonic() >= _down_until[0]:  # say it once per lapse, not once per buyer
        log.warning("flash-sale gate: Redis %s failed; PostgreSQL answers alone for %ss", what, DOWN_SECONDS,
                    exc_info=True)  # fmt: skip
    _down_until[0] = time.monotonic() + DOWN_SECONDS


async def take(bucket_id: int, quantity: int, *, seed: Seed) -> tuple[int, int] | None:
    """(TAKEN, left after) or (REFUSED, left) from the counter; None: no gate, ask PostgreSQL.

    `seed` reads the bucket's `available` from PostgreSQL when the counter has lapsed (one
    read per process per lapse, however many buyers wait for it)."""
    gate = _gate()
    if gate is None:
        return None
    return await gate.batches.ask(bucket_id, (quantity, seed))


async def _call(what: str, call, failed=None):
    """`call(gate)` within TIMEOUT_SECONDS; `failed` when there is no gate or Redis failed."""
    import redis

    gate = _gate()
    if gate is None:
        return failed
    try:
        return await asyncio.wait_for(call(gate), TIMEOUT_SECONDS)
    except (TimeoutError, redis.RedisError, OSError):
        _failed(what)
        return failed


async def give_back(bucket_id: int, quantity: int) -> None:
    await _call("give back", lambda gate: gate.give_back(keys=[counter_key(bucket_id)], args=[quantity]))


async def settle(bucket_id: int, quantity: int) -> None:
    """A buyer who took units here has PostgreSQL's answer: they are no longer in flight."""
    await _call("settle", lambda gate: gate.settle(keys=[in_flight_key(bucket_id)], args=[quantity]))


_UNKNOWN = object()  # what `_call` answers for a read that failed


async def in_flight(bucket_id: int) -> int | None:
    """Units buyers took here whose reservation in PostgreSQL has not finished (None: no
    gate, or Redis failed)."""
    value = await _call("read", lambda gate: gate.client.get(in_flight_key(bucket_id)), failed=_UNKNOWN)
    return None if value is _UNKNOWN else max(0, int(value or 0))


async def net_of_claims(bucket_id: int, read: Callable[[], Awaitable], *, reads: int = 3,
                        patience: float = 0.0) -> tuple[object, int | None, int | None]:  # fmt: skip
    """`await read()` (a read of PostgreSQL) between two reads of the bucket's claims in
    flight: (its result, the claims before, the claims after; None where Redis failed).

    A claim settles only after its reservation has committed. So, while no buyer passes the
    gate, the claims not yet in PostgreSQL's count lie between the two: fewer than the count
    before if a batch committed between that read and PostgreSQL's (counted in both), more
    than the count after if a batch committed after PostgreSQL's read and settled before the
    second. When the two agree, nothing settled meanwhile and the count is exact, but for a
    batch caught between its commit and its settle (one Redis call). While they disagree the
    read is repeated: up to `reads` times at once, then every 10 ms until `patience` seconds
    have passed (claims settle a batch at a time, so they soon stand still)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    claimed = await in_flight(bucket_id)
    tries = 0
    while True:
        before = claimed
        result = await read()
        claimed = await in_flight(bucket_id)
        tries += 1
        if claimed == before or None in (before, claimed) or (tries >= reads and loop.time() >= deadline):
            return result, before, claimed
        if tries >= reads:
            await asyncio.sleep(0.01)
