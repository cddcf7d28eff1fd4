"""The Lua scripts that change a semaphore's state on the server.

Every change is one script, so it is atomic.  Each script first drops the
holders whose lease has expired and the waiters whose liveness has lapsed,
then hands free permits to the head of the queue (direct hand-off), so that
no permit stays free while a live process waits for it.  Every script is
idempotent for a given permit id: run twice, it leaves the same state and
gives the same answer (a withdrawn id is remembered for a while, so that a
late acquire of it cannot resurrect it).  Times are the server's own
(``TIME``), never a client's.
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "KEY_SUFFIXES", "RELEASE", "RENEW", "STATISTICS"]

# The keys of one semaphore, in the order the scripts take them (KEYS[1..6]);
# all share one hash tag, so that Redis Cluster keeps them in one slot.
KEY_SUFFIXES = ("holders", "queue", "waiting", "alive", "withdrawn", "meta")

# KEYS: the six above.  ARGV[1]: the semaphore's value (its number of permits).
_PRELUDE = """
local holders, queue, waiting, alive, withdrawn, meta =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local value = tonumber(ARGV[1])
local time = redis.call('TIME')
local now_us = tonumber(time[1]) * 1000000 + tonumber(time[2])
local now = math.floor(now_us / 1000)

local function int(x)
    return string.format('%.0f', x)
end

-- When a lease given now ends: rounded up to the millisecond, because a
-- holder is dropped once *now*, rounded down, reaches it, and a lease must
-- last its whole length on the server, the holder's deadline being earlier.
local function lease_end(lease_ms)
    return int(math.ceil(now_us / 1000) + lease_ms)
end

-- Every write that adds an entry goes through write(ms, ...), *ms* being
-- how long the entry must outlive this script.  All six keys end at one
-- time, *expires* (server ms, kept in *meta*), so that none outlives the
-- others (a queue without its waiters' entries): tidy() moves it on when an
-- entry needs it, plus a grace period, and gives it to each key written, which
-- may be new.  So idle keys vanish, and the fencing counter outlives the
-- clock's lead on it.
local written, longest = {}, 0
local function write(ms, command, key, ...)
    written[key] = true
    if ms > longest then
        longest = ms
    end
    return redis.call(command, key, ...)
end

local known, fence, expires = unpack(redis.call('HMGET', meta, 'value', 'fence', 'expires'))

local function tidy()
    local needed = now + longest + 2000
    if expires and tonumber(expires) >= needed then
        -- A key written may be new, without an expiry; not *meta*, whose
        -- *expires* was read: its expiry has been that since it was made.
        for key in pairs(written) do
            if key ~= meta then
                redis.call('PEXPIREAT', key, expires)
            end
        end
    elseif next(written) then
        expires = int(needed + 2000)
        redis.call('HSET', meta, 'expires', expires)
        for _, key in ipairs(KEYS) do
            redis.call('PEXPIREAT', key, expires)
        end
    end
end

if not known then
    write(0, 'HSET', meta, 'value', value)
elseif tonumber(known) ~= value then
    return redis.error_reply('LOOPSYNC_VALUE ' .. known)
end

-- A fencing token exceeds every earlier one: the counter survives while the
-- semaphore is in use, the server's clock in microseconds afterwards (and
-- after a restart that lost the counter), and *floor* is the highest token
-- the caller has seen.
local function grant(id, lease_ms, floor)
    local token = math.max(tonumber(fence or '0') + 1, now_us, floor)
    fence = int(token)
    write(lease_ms, 'HSET', meta, 'fence', fence, 'token:' .. id, fence)
    write(lease_ms, 'ZADD', holders, lease_end(lease_ms), id)
    return token
end

-- *queued* counts the queue, so that with none queued (the uncontended
-- case) the scripts skip the waiters' upkeep.
local queued = redis.call('ZCARD', queue)
local function forget_waiter(id)
    queued = queued - redis.call('ZREM', queue, id)
    redis.call('ZREM', alive, id)
    redis.call('HDEL', waiting, id)
end

-- Returns true if *id* held a permit.
local function forget_holder(id)
    if redis.call('ZREM', holders, id) == 1 then
        redis.call('HDEL', meta, 'token:' .. id)
        return true
    end
    return false
end

for _, id in ipairs(redis.call('ZRANGEBYSCORE', holders, '-inf', now)) do
    forget_holder(id)
end
if queued > 0 then
    for _, id in ipairs(redis.call('ZRANGEBYSCORE', alive, '-inf', now)) do
        forget_waiter(id)
    end
end

-- Only RELEASE adds to *withdrawn*, and it drops the ids whose time is up;
-- the other scripts read an id's time instead: this returns it while it runs.
local function withdrawn_until(id)
    local until_ms = tonumber(redis.call('ZSCORE', withdrawn, id))
    if until_ms and until_ms > now then
        return until_ms
    end
end

-- Hand each free permit to the next waiter, and tell its process, on its
-- session's channel (the id is '<session>:<n>'): '<id> <token> <ask>', where
-- <ask> is the number of the waiter's last ask, which the grant followed.
local function promote()
    while queued > 0 and redis.call('ZCARD', holders) < value do
        local head = redis.call('ZRANGE', queue, 0, 0)[1]
        if not head then
            break
        end
        local entry = redis.call('HGET', waiting, head)
        forget_waiter(head)
        -- An entry evicted on its own (a server short of memory) is no waiter.
        if entry then
            local lease_ms, ask, floor = string.match(entry, '^(%d+):(%d+):(%d+)$')
            local token = grant(head, tonumber(lease_ms), tonumber(floor))
            local channel = 'loopsync:session:' .. string.match(head, '^(.*):')
            redis.call('PUBLISH', channel, head .. ' ' .. int(token) .. ' ' .. ask)
        end
    end
end
promote()

local function earliest_expiry()
    local first = redis.call('ZRANGE', holders, 0, 0, 'WITHSCORES')[2]
    if first then
        return int(tonumber(first) - now)
    end
    return -1
end
"""

# ARGV[2]: the permit id; [3]: lease (ms); [4]: liveness (ms) of a waiter;
# [5]: the lowest acceptable token; [6]: '1' to wait in the queue, '0' not;
# [7]: the number of this ask by the id (1, 2, ...).
# Returns {1, token} once the id holds a permit (renewing its lease), or
# {0, ms until the first lease expires (-1: none)} while it waits or may not.
ACQUIRE = (
    _PRELUDE
    + """
local id, lease_ms, alive_ms = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local floor, queue_up, ask = tonumber(ARGV[5]), ARGV[6] == '1', ARGV[7]
local result
if redis.call('ZSCORE', holders, id) then
    local token = redis.call('HGET', meta, 'token:' .. id)
    if token then
        write(lease_ms, 'ZADD', holders, lease_end(lease_ms), id)
    else
        -- Its token went with *meta* (evicted, or deleted): granted anew.
        token = int(grant(id, lease_ms, floor))
    end
    result = {1, token}
elseif queued > 0 and redis.call('HEXISTS', waiting, id) == 1 then
    write(alive_ms, 'HSET', waiting, id, ARGV[3] .. ':' .. ask .. ':' .. ARGV[5])
    write(alive_ms, 'ZADD', alive, int(now + alive_ms), id)
    result = {0, earliest_expiry()}
elseif withdrawn_until(id) then
    result = {0, -1}
elseif queued == 0 and redis.call('ZCARD', holders) < value then
    result = {1, int(grant(id, lease_ms, floor))}
elseif queue_up then
    local arrival = write(alive_ms, 'HINCRBY', meta, 'arrivals', 1)
    write(alive_ms, 'ZADD', queue, arrival, id)
    write(alive_ms, 'HSET', waiting, id, ARGV[3] .. ':' .. ask .. ':' .. ARGV[5])
    write(alive_ms, 'ZADD', alive, int(now + alive_ms), id)
    result = {0, earliest_expiry()}
else
    result = {0, earliest_expiry()}
end
tidy()
return result
"""
)

# ARGV[2]: how long (ms) to remember a released id; [3...]: permit ids.
# Frees each id's permit, or takes it out of the queue, then hands the
# permits freed to the waiters left.  Returns, per id, 1 if it held a permit,
# 2 if it was waiting, 0 if it was neither (its lease had ended).  Run again
# while the id is remembered, it gives the first answer, which the tenths of
# the id's time in *withdrawn* keep.
RELEASE = (
    _PRELUDE
    + """
local remember_ms = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', withdrawn, '-inf', now)
local result = {}
for index = 3, #ARGV do
    local id = ARGV[index]
    local until_ms = withdrawn_until(id)
    local released = 0
    if until_ms then
        released = math.floor(until_ms % 1 * 10 + 0.5)
    else
        if forget_holder(id) then
            released = 1
        elseif queued > 0 and redis.call('HEXISTS', waiting, id) == 1 then
            forget_waiter(id)
            released = 2
        end
        write(remember_ms, 'ZADD', withdrawn, int(now + remember_ms) .. '.' .. released, id)
    end
    result[#result + 1] = released
end
promote()
tidy()
return result
"""
)

# ARGV[2]: lease (ms); [3...]: permit ids.  Extends the lease of each permit
# still held.  Returns, per id, 1, or 0 if the permit is gone (its lease
# expired, or the server lost it).
RENEW = (
    _PRELUDE
    + """
local lease_ms = tonumber(ARGV[2])
local result = {}
for index = 3, #ARGV do
    local id = ARGV[index]
    if redis.call('ZSCORE', holders, id) then
        write(lease_ms, 'ZADD', holders, lease_end(lease_ms), id)
        result[#result + 1] = 1
    else
        result[#result + 1] = 0
    end
end
tidy()
return result
"""
)

# Returns {permits held, processes' tasks waiting}.  The six keys come and go
# together, so a name without *meta* is unused: it is answered unwritten, so
# that reading it fixes no value for the processes that come next.
STATISTICS = (
    """
if redis.call('EXISTS', KEYS[6]) == 0 then
    return {0, 0}
end
"""
    + _PRELUDE
    + """
local result = {redis.call('ZCARD', holders), queued}
tidy()
return result
"""
)
