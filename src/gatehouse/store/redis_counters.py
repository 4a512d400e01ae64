"""The Redis counter backend: the rules of :mod:`gatehouse.store.counters` in Lua.

Each admission is one ``EVALSHA`` round trip that reads, decides and writes
all of a request's claims atomically, so concurrent requests on any number of
replicas see one consistent count. Numbers travel as strings with 17
significant digits (Lua's own ``tostring`` keeps only 14).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gatehouse.store.counters import Claim, CounterUnavailableError, Decision, Outcome

_COMMON = """
local function fmt(v) return string.format('%.17g', v) end
local function claim(i)
  local b = 1 + (i - 1) * 4  -- ARGV: now, then kind/limit/amount/period per key
  return ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
end
"""

ADMIT = (
    _COMMON
    + """
local now = tonumber(ARGV[1])
local eps = 1e-9
local out, new, ttl = {}, {}, {}
local ok_all = 1
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
    local quota_reset = 0
    if kind == 'quota' then quota_reset = period end
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
      if kind == 'quota' then retry = period else retry = 1 end
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
        self._admit = self._redis.register_script(ADMIT)
        self._settle = self._redis.register_script(SETTLE)

    async def admit(self, claims: Sequence[Claim], now: float) -> Decision:
        if not claims:
            return Decision(True, ())
        try:
            raw = await self._admit(keys=self._keys(claims), args=_args(claims, now))
        except RedisError as exc:
            raise CounterUnavailableError(str(exc)) from exc
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
        try:
            await self._settle(keys=self._keys(changed), args=_args(changed, now))
        except RedisError as exc:
            raise CounterUnavailableError(str(exc)) from exc

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
        await self._redis.aclose()

    def _keys(self, claims: Sequence[Claim]) -> list[str]:
        return [self._prefix + claim.key for claim in claims]


def _args(claims: Sequence[Claim], now: float) -> list[str]:
    args = [repr(now)]
    for claim in claims:
        args += [
            claim.kind,
            repr(float(claim.limit)),
            repr(float(claim.amount)),
            repr(claim.period),
        ]
    return args
