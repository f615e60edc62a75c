"""The room socket's sold-out answer without leaving the event loop.

Once a flash sale is gone, almost every buy is refused. The refusal needs one indexed read
(`services.precheck_query`: has this key placed an order already, how many units are left);
here that read runs on a small pool of async PostgreSQL connections owned by the event loop,
so a refused buyer costs no thread hop and no Django ORM. Anything else (units left, a
replayed key, a room not live) goes the full way through `services.order_place`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from django.conf import settings

from orders import services

log = logging.getLogger(__name__)

POOL_SIZE = 2
_pools: dict[asyncio.AbstractEventLoop, list] = {}
_locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}
_turn = itertools.count()


def _conninfo() -> str | None:
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        return None
    parts = {"dbname": db["NAME"], "user": db.get("USER"), "password": db.get("PASSWORD"), "host": db.get("HOST"),
             "port": db.get("PORT")}  # fmt: skip
    return " ".join(f"{k}={v}" for k, v in parts.items() if v)


async def _connection():
    import psycopg

    loop = asyncio.get_running_loop()
    if loop not in _locks:
        _locks[loop] = asyncio.Lock()
    pool = _pools.setdefault(loop, [])
    if len(pool) < POOL_SIZE:
        async with _locks[loop]:  # one opener at a time: a burst must not open a connection each
            while len(pool) < POOL_SIZE:
                conninfo = _conninfo()
                if conninfo is None:
                    return None
                pool.append(await psycopg.AsyncConnection.connect(conninfo, autocommit=True))
    return pool[next(_turn) % len(pool)]


async def precheck(*, user_id: int, key: str, shelf_item_id: int, flash_sale_id: int | None,
                   room_id: int) -> tuple[int | None, int | None] | None:  # fmt: skip
    """(order id for this key, units left) or None when the fast read is not available."""
    import psycopg

    sql, params = services.precheck_query(user_id=user_id, key=key, shelf_item_id=shelf_item_id,
                                          flash_sale_id=flash_sale_id, room_id=room_id)  # fmt: skip
    conn = None
    try:
        conn = await _connection()
        if conn is None:
            return None
        cursor = await conn.execute(sql, params)
        return await cursor.fetchone()
    except psycopg.Error:
        log.warning("fast precheck failed; using the full path", exc_info=True)
        if conn is not None:
            pool = _pools.get(asyncio.get_running_loop(), [])
            if conn in pool:
                pool.remove(conn)
            await conn.close()
        return None
