#!lua name=roomstate

-- The Redis journal's one write: a batch of room operations, checked and applied all-or-nothing
-- on the server (DESIGN.md "One atomic, fenced append per batch"). Loaded with FUNCTION LOAD
-- REPLACE at connect, and again on each new primary.
--
-- FCALL roomstate_batch <3 * rooms> <log> <snap> <owner> ... <op args...>
--
-- Keys, three per operation, all under the room's hash tag (so a batch splits per slot under
-- Redis Cluster): the room's stream of events, its snapshot (a JSON string), and its owner hash
-- {node, epoch, snap_seq, writes}.
-- Arguments, per operation in key order:
--   "A" <epoch> <first seq> <count> <event json> ...   append events first..first+count-1
--   "S" <epoch> <seq> <snapshot json>                   store a snapshot, trim the log up to it
--   "D" <epoch>                                         forget the room (its record is in SQL)
-- <epoch> is the writer's lease epoch for the room; 0 means "no lease" (a single engine).
--
-- Every check of every operation runs before any write: a batch with one bad operation changes
-- nothing of the others... except that operations are independent — each one is answered on its
-- own, and only the good ones are applied (a room's refusal must not hold up other rooms). The
-- writes of one operation are all-or-nothing: nothing can fail once its checks passed (the
-- function is refused whole under OOM before it runs, as it is not `allow-oom`).
--
-- Answers, one per operation: "OK", or "STALE <epoch> <node>" (the room has another owner now:
-- the writer must stop writing it), "CONFLICT <seq>" (a stored event differs from the one sent:
-- never "already stored"), "GAP <expected seq>" (the first event does not follow the log).
-- Each call also bumps a counter in each room's owner hash, so the WAIT after the batch covers it
-- even when every event was already stored.

local function last_seq(log)
  if redis.call('EXISTS', log) == 0 then
    return 0
  end
  local info = redis.call('XINFO', 'STREAM', log)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      return tonumber((string.match(info[i + 1], '^(%d+)')))
    end
  end
  return 0
end

local function owner_refusal(owner, epoch)
  local current = redis.call('HMGET', owner, 'epoch', 'node')
  local stored = tonumber(current[1] or '0') or 0
  if stored ~= epoch then
    return 'STALE ' .. tostring(stored) .. ' ' .. tostring(current[2] or '')
  end
  return nil
end

-- Checks one append; returns the refusal, or nil and the index of the first new event.
local function check_append(log, owner, first, events)
  local top = last_seq(log)
  if first > top + 1 then
    return 'GAP ' .. tostring(top + 1)
  end
  local snap_seq = tonumber(redis.call('HGET', owner, 'snap_seq') or '0') or 0
  -- Events at or below the top must be exactly what is stored (a re-send after a lost reply);
  -- those trimmed away by a snapshot were made durable by this room's owner before it.
  for i = 1, #events do
    local seq = first + i - 1
    if seq > top then
      return nil, i
    end
    if seq > snap_seq then
      local id = tostring(seq) .. '-0'
      local stored = redis.call('XRANGE', log, id, id)
      if #stored == 0 or stored[1][2][2] ~= events[i] then
        return 'CONFLICT ' .. tostring(seq)
      end
    end
  end
  return nil, #events + 1
end

local function batch(keys, args)
  local answers = {}
  local writes = {}
  local a = 1
  for k = 1, #keys, 3 do
    local log, snap, owner = keys[k], keys[k + 1], keys[k + 2]
    local op = args[a]
    local epoch = tonumber(args[a + 1])
    a = a + 2
    local refusal = owner_refusal(owner, epoch)
    if op == 'A' then
      local first = tonumber(args[a])
      local count = tonumber(args[a + 1])
      local events = {}
      for i = 1, count do
        events[i] = args[a + 1 + i]
      end
      a = a + 2 + count
      local from
      if not refusal then
        refusal, from = check_append(log, owner, first, events)
      end
      if not refusal then
        writes[#writes + 1] = { 'A', log, owner, first, events, from }
      end
    elseif op == 'S' then
      local seq = tonumber(args[a])
      local body = args[a + 1]
      a = a + 2
      if not refusal and seq > last_seq(log) then
        refusal = 'GAP ' .. tostring(last_seq(log) + 1)
      end
      if not refusal then
        writes[#writes + 1] = { 'S', log, owner, seq, body, snap }
      end
    elseif op == 'D' then
      if not refusal then
        writes[#writes + 1] = { 'D', log, owner, snap }
      end
    else
      return redis.error_reply('roomstate_batch: unknown operation ' .. tostring(op))
    end
    answers[#answers + 1] = refusal or 'OK'
  end
  for _, w in ipairs(writes) do
    if w[1] == 'A' then
      local log, owner, first, events, from = w[2], w[3], w[4], w[5], w[6]
      for i = from, #events do
        redis.call('XADD', log, tostring(first + i - 1) .. '-0', 'e', events[i])
      end
      redis.call('HINCRBY', owner, 'writes', 1)
    elseif w[1] == 'S' then
      local log, owner, seq, body, snap = w[2], w[3], w[4], w[5], w[6]
      redis.call('SET', snap, body)
      redis.call('XTRIM', log, 'MINID', tostring(seq + 1) .. '-0')
      redis.call('HSET', owner, 'snap_seq', seq)
      redis.call('HINCRBY', owner, 'writes', 1)
    else
      local log, owner, snap = w[2], w[3], w[4]
      redis.call('DEL', log, snap, owner)
    end
  end
  return answers
end

redis.register_function('roomstate_batch', batch)
