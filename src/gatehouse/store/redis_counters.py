"""The Redis counter backend: the rules of :mod:`gatehouse.store.counters` in Lua.

Each admission is one ``EVALSHA`` that reads, decides and writes all of a
request's claims atomically, so concurrent requests on any number of replicas
see one consistent count. The scripts of all requests that arrive in one turn
of the event loop go to Redis together in one pipeline (one round trip, one
connection), which is what keeps shared counters affordable on the hot path.
Numbers travel as strings with 17 significant digits (Lua's own ``tostring``
keeps only 14).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from gatehouse.store.counters import (
    Claim,
    CounterUnavailableError,
    CounterUnseededError,
    Decision,
    Outcome,
)

_COMMON = """
local function fmt(v) return string.format('%.17g', v) end
-- ARGV: now, then one "kind limit amount period" string per key (fewer
-- arguments to encode per call than four each).
local function claim(i)
  local kind, limit, amount, period = string.match(ARGV[i + 1], '(%S+) (%S+) (%S+) (%S+)')
  return kind, tonumber(limit), tonumber(amount), tonumber(period)
end
"""

ADMIT = (
    _COMMON
    + """
local now = tonumber(ARGV[1])
local eps = 1e-9
local out, new, ttl = {}, {}, {}
local ok_all = 1
-- A budget's spend (kind "spend") must have been seeded: if Redis lost it,
-- write nothing and name the claims, which the caller seeds again.
local unseeded = {}
for i = 1, #KEYS do
  if string.sub(ARGV[i + 1], 1, 6) == 'spend ' and redis.call('EXISTS', KEYS[i]) == 0 then
    unseeded[#unseeded + 1] = tostring(i)
  end
end
if #unseeded > 0 then
  table.insert(unseeded, 1, 'unseeded')
  return unseeded
end
for i = 1, #KEYS do
  local kind, limit, amount, period = claim(i)
  local state = tonumber(redis.call('GET', KEYS[i]) or '0')
  local ok, remaining, reset, retry, lvl = 1, 0, 0, 0, 0
  if kind == 'rate' then
    local interval = period / limit
    local tat = math.max(state, now)
    local nt = tat + amount * interval
    local allow_at = nt - period
    if allow_at > now + eps then
      ok = 0
      remaining = math.max(0, math.floor((period - (tat - now)) / interval + eps))
      reset, retry = tat - now, allow_at - now
    else
      remaining = math.max(0, math.floor((period - (nt - now)) / interval + eps))
      reset = nt - now
      new[i] = nt
      ttl[i] = math.ceil((math.max(nt - now, 0) + 1) * 1000)
    end
  else
    local level = state + amount
    lvl = level
    local is_quota = kind == 'quota' or kind == 'spend'
    local quota_reset = 0
    if is_quota then quota_reset = period end
    if limit < 0 then
      remaining = -1
      new[i] = level
    elseif level <= limit + eps then
      remaining, reset = limit - level, quota_reset
      new[i] = level
    else
      ok = 0
      lvl = state
      remaining, reset = math.max(0, limit - state), quota_reset
      if is_quota then retry = period else retry = 1 end
    end
    if period > 0 then ttl[i] = math.ceil(period * 1000) else ttl[i] = 0 end
  end
  if ok == 0 then ok_all = 0 end
  out[#out + 1] = tostring(ok)
  out[#out + 1] = fmt(remaining)
  out[#out + 1] = fmt(reset)
  out[#out + 1] = fmt(retry)
  out[#out + 1] = fmt(lvl)
end
if ok_all == 1 then
  for i = 1, #KEYS do
    if ttl[i] > 0 then
      redis.call('SET', KEYS[i], fmt(new[i]), 'PX', ttl[i])
    else
      redis.call('SET', KEYS[i], fmt(new[i]))
    end
  end
end
table.insert(out, 1, tostring(ok_all))
return out
"""
)

SETTLE = (
    _COMMON
    + """
for i = 1, #KEYS do
  local kind, limit, delta, period = claim(i)
  if delta ~= 0 and redis.call('EXISTS', KEYS[i]) == 1 then
    if kind == 'rate' then delta = delta * (period / limit) end
    local value = tonumber(redis.call('GET', KEYS[i])) + delta
    redis.call('SET', KEYS[i], fmt(value), 'KEEPTTL')
  end
end
return 1
"""
)


class RedisCounters:
    """Counters in one Redis server, shared by every replica."""

    def __init__(self, url: str, *, prefix: str = "gh:") -> None:
        # A blocking pool: a burst of requests waits briefly for a connection
        # instead of failing with "too many connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=64,
            timeout=2,
            socket_timeout=2,
            socket_connect_timeout=2,
            decode_responses=True,
        )
        self._redis: Any = aioredis.Redis(connection_pool=pool)
        self._prefix = prefix
        self._scripts = {"admit": ADMIT, "settle": SETTLE}
        self._shas: dict[str, str] = {}
        self._queue: list[tuple[str, list[str], list[str], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def _run(self, script: str, keys: list[str], args: list[str]) -> Any:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((script, keys, args, done))
        return await done

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        task = asyncio.create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self, batch: list[tuple[str, list[str], list[str], asyncio.Future[Any]]]
    ) -> None:
        try:
            results = await self._pipeline(batch)
            missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if missing:
                # Redis restarted and forgot the scripts: load them again, once.
                self._shas.clear()
                again = await self._pipeline([batch[i] for i in missing])
                for index, result in zip(missing, again, strict=True):
                    results[index] = result
        except RedisError as exc:
            for *_, done in batch:
                if not done.done():
                    done.set_exception(CounterUnavailableError(str(exc)))
            return
        for (*_, done), result in zip(batch, results, strict=True):
            if done.done():
                continue
            if isinstance(result, Exception):
                done.set_exception(CounterUnavailableError(str(result)))
            else:
                done.set_result(result)

    async def _pipeline(
        self, batch: list[tuple[str, list[str], list[str], asyncio.Future[Any]]]
    ) -> list[Any]:
        if len(self._shas) < len(self._scripts):
            for name, source in self._scripts.items():
                self._shas[name] = await self._redis.script_load(source)
        async with self._redis.pipeline(transaction=False) as pipe:
            for script, keys, args, _ in batch:
                pipe.evalsha(self._shas[script], len(keys), *keys, *args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    async def admit(self, claims: Sequence[Claim], now: float) -> Decision:
        if not claims:
            return Decision(True, ())
        raw = await self._run("admit", self._keys(claims), _args(claims, now))
        if raw[0] == "unseeded":
            raise CounterUnseededError([claims[int(index) - 1].key for index in raw[1:]])
        outcomes = []
        for index in range(len(claims)):
            ok, remaining, reset, retry, level = raw[1 + index * 5 : 6 + index * 5]
            left = float(remaining)
            outcomes.append(
                Outcome(
                    ok == "1",
                    float("inf") if left < 0 else left,
                    float(reset),
                    float(retry),
                    float(level),
                )
            )
        return Decision(raw[0] == "1", tuple(outcomes))

    async def settle(self, claims: Sequence[Claim], deltas: Sequence[float], now: float) -> None:
        pairs = [(c, d) for c, d in zip(claims, deltas, strict=True) if d != 0]
        if not pairs:
            return
        changed = [Claim(c.kind, c.key, c.limit, d, c.period) for c, d in pairs]
        await self._run("settle", self._keys(changed), _args(changed, now))

    async def seed(self, key: str, value: float, ttl: float) -> None:
        try:
            await self._redis.set(
                self._prefix + key, repr(value), nx=True, px=int(ttl * 1000) if ttl > 0 else None
            )
        except RedisError as exc:
            raise CounterUnavailableError(str(exc)) from exc

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except RedisError:
            return False

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()

    def _keys(self, claims: Sequence[Claim]) -> list[str]:
        return [self._prefix + claim.key for claim in claims]


def _args(claims: Sequence[Claim], now: float) -> list[str]:
    return [
        repr(now),
        *(f"{c.kind} {float(c.limit)!r} {float(c.amount)!r} {float(c.period)!r}" for c in claims),
    ]
