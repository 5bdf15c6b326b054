"""Rate-limit windows and budget spend in Redis: the Lua scripts, and the request's pending admission.

The scripts keep the in-process limiter's semantics (ratelimit.py) exactly, for every process at
once: a 60-second sliding window of requests (a sorted set scored by time) and one of tokens (a
sorted set of reservations, their amounts in a hash, the window's total in a counter, so a
reservation can be corrected to the real usage); spend per key and period in counters. Time is
Redis's own clock (TIME), so processes on machines with drifting clocks still share one window.

"May this request go" is one script call. It is made once per request, either alone or pipelined
with the cache's shared-tier read (redis_cache.py): `Admission` carries the call's keys and
arguments from the ratelimit stage to whichever sends it, and the answer back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WINDOW_MS = 61_000  # keys of a window outlive it slightly; Redis drops an idle key's state by itself

# KEYS: requests zset, tokens zset, tokens hash, tokens total, seeded marker, then one spend counter
# per budget. ARGV: rpm (-1: none), tpm (-1: none), estimate, member, then each budget's cap.
# Reply: {0, requests in window, tokens in window} admitted; {1, budget index, spent} over budget;
# {2, requests, seconds to wait} over rpm; {3, tokens, seconds to wait} over tpm; {-1} not seeded.
ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local edge = now - 60
local nb = #KEYS - 5
if nb > 0 and redis.call('EXISTS', KEYS[5]) == 0 then return {-1} end
for i = 1, nb do
  local spent = tonumber(redis.call('GET', KEYS[5 + i]) or '0')
  if spent >= tonumber(ARGV[4 + i]) then return {1, i, tostring(spent)} end
end
local rpm, tpm, est = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local count = 0
if rpm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', edge)
  count = redis.call('ZCARD', KEYS[1])
  if count >= rpm then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    local wait = 60
    if first[2] then wait = tonumber(first[2]) + 60 - now end
    return {2, count, tostring(wait)}
  end
end
local total = 0
if tpm >= 0 then
  total = tonumber(redis.call('GET', KEYS[4]) or '0')
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', edge)
  if #old > 0 then
    for _, m in ipairs(old) do
      total = total - tonumber(redis.call('HGET', KEYS[3], m) or '0')
      redis.call('HDEL', KEYS[3], m)
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', edge)
    if total < 0.5 then total = 0 end
    redis.call('SET', KEYS[4], tostring(total), 'PX', ARGV[#ARGV])
  end
  if total + est > tpm then
    local wait = 60
    if est <= tpm then
      local left = total
      local events = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
      for i = 1, #events, 2 do
        left = left - tonumber(redis.call('HGET', KEYS[3], events[i]) or '0')
        if left <= tpm - est then wait = tonumber(events[i + 1]) + 60 - now break end
      end
    end
    return {3, tostring(total), tostring(wait)}
  end
end
local ttl = ARGV[#ARGV]
if rpm >= 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ttl)
  count = count + 1
end
if tpm >= 0 then
  redis.call('ZADD', KEYS[2], now, ARGV[4])
  redis.call('HSET', KEYS[3], ARGV[4], tostring(est))
  total = total + est
  redis.call('SET', KEYS[4], tostring(total), 'PX', ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
return {0, count, tostring(total)}
"""

# KEYS: tokens hash, tokens total. ARGV: member, real tokens. The reservation is corrected only while
# it is still in the window (as the in-process limiter does).
SETTLE_TOKENS = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local actual = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], tostring(actual))
local total = tonumber(redis.call('GET', KEYS[2]) or '0') + actual - tonumber(old)
if total < 0.5 then total = 0 end
redis.call('SET', KEYS[2], tostring(total), 'KEEPTTL')
return 1
"""

# KEYS: seeded marker, then spend counters. ARGV: usd, then each counter's TTL in seconds (0: none).
# Nothing is added to counters that were lost with a restarted Redis and not yet seeded again: the
# seed reads the usage log, which holds this request's cost too.
ADD_SPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 2, #KEYS do
  redis.call('INCRBYFLOAT', KEYS[i], ARGV[1])
  local ttl = tonumber(ARGV[i])
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl, 'NX') end
end
return 1
"""

SCRIPTS = {"admit": ADMIT, "settle_tokens": SETTLE_TOKENS, "add_spend": ADD_SPEND}
ADMITTED, OVER_BUDGET, OVER_RPM, OVER_TPM, NOT_SEEDED = 0, 1, 2, 3, -1
DAY_TTL_S, MONTH_TTL_S = 2 * 86400, 32 * 86400


@dataclass(slots=True)
class Admission:
    """A request's limit check waiting to be sent (`keys`, `args` of the admit script), then its
    answer (`reply`) or `failed` when Redis did not answer."""

    keys: list[str]
    args: list[Any]
    body_bytes: int
    budgets: list[tuple[str, float, str]]  # (key id, cap, period) in the order of the spend keys
    member: str
    ident: str
    reply: list[Any] | None = None
    failed: bool = False


def spend_key(prefix: str, key_id: str, period: str, start: float) -> str:
    """The counter of one key's spend in one period ("day", "month", "total") starting at `start`."""
    return f"{prefix}spend:{key_id}:{period[0]}:{int(start)}"


def window_keys(prefix: str, ident: str) -> list[str]:
    base = f"{prefix}rl:{ident}:"
    return [base + "r", base + "t", base + "th", base + "tt"]
