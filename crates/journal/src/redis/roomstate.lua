#!lua name=roomstate

-- The Redis journal's one write: a batch of room operations, checked and applied all-or-nothing
-- on the server (docs/architecture.md "The Redis journal"). Loaded with FUNCTION LOAD
-- REPLACE at connect, and again on each new primary.
--
-- FCALL roomstate_batch <4 * rooms> <log> <snap> <owner> <msgs> ... <op args...>
--
-- Keys, four per operation, all under the room's hash tag (so a batch splits per slot under
-- Redis Cluster): the room's stream of events, its snapshot (a JSON string), its owner hash
-- {node, epoch, snap_seq, resends}, and its stream of chat messages (every message of the room,
-- which a snapshot does not trim: a room keeps only the newest in memory).
-- Arguments, per operation in key order:
--   "A" <epoch> <first seq> <count> <event json> ... <n> (<seq> <message json>) x n
--                                                       append events first..first+count-1, and
--                                                       the messages they post
--   "S" <epoch> <seq> <snapshot json>                   store a snapshot, trim the log up to it
--   "D" <epoch>                                         forget the room (its record is in SQL)
--   "C" <epoch> <node> <"new"|"take">                   claim the room for <node>: its epoch
--                                                       becomes <epoch> + 1. "new": a room that
--                                                       has no log yet; "take": one that has
--   "R" <epoch>                                         release the room (hand-off): no node
--                                                       owns it; the next claim of <epoch> wins
-- <epoch> is the writer's lease epoch for the room (for "C": the epoch it saw, so of two nodes
-- claiming one room only the first wins); 0 means "never claimed". "C" may give "*" instead:
-- claim whatever the epoch is (a single engine taking every room at start).
--
-- Operations are independent: each is answered on its own, and only the accepted ones are applied
-- (one room's refusal must not hold up the others). Every check runs before any write, and
-- nothing can fail once the checks passed (a function that writes is refused whole under OOM
-- before it runs, as this one is not `allow-oom`), so each operation is all-or-nothing.
--
-- Answers, one per operation: "OK" ("OK <epoch>" for a claim), or "STALE <epoch> <node>" (the
-- room has another owner now: the writer must stop writing it), "CONFLICT <seq>" (a stored event
-- differs from the one sent: never "already stored"), "GAP <expected seq>" (the first event does
-- not follow the log), "GONE" (a "take" of a room with no log: it was closed) or "EXISTS" (a
-- "new" claim of a room that has a log).
-- Events appended under an epoch above 0 carry it in their entry (field "o"), so a reader of the
-- log sees where an owner took over: the new owner replayed the room with nobody present.
-- An append whose events were all stored already still writes (a counter in the owner hash), so
-- the WAIT after the batch always covers the call.

-- The owner hash's epoch, node and snapshot seq (0, '' and 0 when it does not exist).
local function owner_of(owner)
  local o = redis.call('HMGET', owner, 'epoch', 'node', 'snap_seq')
  return tonumber(o[1] or '0') or 0, o[2] or '', tonumber(o[3] or '0') or 0
end

-- The seq of the room's last event: the top entry of its log, or — when a snapshot trimmed the
-- log empty — the snapshot's seq (everything up to it was durable when it was taken).
local function last_seq(log, snap_seq)
  local top = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)
  if #top == 0 then
    return snap_seq
  end
  return tonumber((string.match(top[1][1], '^(%d+)')))
end

-- A stream entry id for a seq, formatted as an integer (tostring would format a float).
local function entry_id(seq)
  return string.format('%d-0', seq)
end

-- Checks one append of the `count` events at args[at], args[at + 1], ...; returns the refusal,
-- or nil and the index (1-based) of the first new event.
local function check_append(log, snap_seq, first, args, at, count)
  local top = last_seq(log, snap_seq)
  if first > top + 1 then
    return 'GAP ' .. tostring(top + 1)
  end
  -- Events at or below the top must be exactly what is stored (a re-send after a lost reply);
  -- those trimmed away by a snapshot were made durable by this room's owner before it.
  for i = 1, count do
    local seq = first + i - 1
    if seq > top then
      return nil, i
    end
    if seq > snap_seq then
      local id = entry_id(seq)
      local stored = redis.call('XRANGE', log, id, id)
      if #stored == 0 or stored[1][2][2] ~= args[at + i - 1] then
        return 'CONFLICT ' .. tostring(seq)
      end
    end
  end
  return nil, count + 1
end

local function batch(keys, args)
  local answers = {}
  local writes = {}
  local a = 1
  for k = 1, #keys, 4 do
    local log, snap, owner, msgs = keys[k], keys[k + 1], keys[k + 2], keys[k + 3]
    local op = args[a]
    local epoch = tonumber(args[a + 1])
    a = a + 2
    local stored_epoch, node, snap_seq = owner_of(owner)
    local refusal
    if args[a - 1] == '*' and op == 'C' then
      epoch = stored_epoch
    end
    if stored_epoch ~= epoch then
      refusal = 'STALE ' .. tostring(stored_epoch) .. ' ' .. node
    end
    local answer = 'OK'
    if op == 'A' then
      -- The events and the messages stay where they are in args: their positions are noted.
      local first = tonumber(args[a])
      local count = tonumber(args[a + 1])
      local events_at = a + 2
      a = a + 2 + count
      local n = tonumber(args[a])
      local messages_at = a + 1
      a = a + 1 + 2 * n
      local from
      if not refusal then
        refusal, from = check_append(log, snap_seq, first, args, events_at, count)
      end
      if not refusal then
        writes[#writes + 1] =
          { 'A', log, owner, first, events_at, count, from, msgs, messages_at, n, epoch }
      end
    elseif op == 'S' then
      local seq = tonumber(args[a])
      local body = args[a + 1]
      a = a + 2
      if not refusal then
        local top = last_seq(log, snap_seq)
        if seq > top then
          refusal = 'GAP ' .. tostring(top + 1)
        end
      end
      if not refusal then
        writes[#writes + 1] = { 'S', log, owner, seq, body, snap }
      end
    elseif op == 'D' then
      if not refusal then
        writes[#writes + 1] = { 'D', log, owner, snap, msgs }
      end
    elseif op == 'C' then
      local claimer, mode = args[a], args[a + 1]
      a = a + 2
      -- Whether the room exists comes first: a closed room has no owner hash left either.
      local exists = redis.call('EXISTS', log, snap) > 0
      if mode == 'new' and exists then
        refusal = 'EXISTS'
      elseif mode ~= 'new' and not exists then
        refusal = 'GONE'
      end
      if not refusal then
        answer = 'OK ' .. tostring(epoch + 1)
        writes[#writes + 1] = { 'C', owner, epoch + 1, claimer }
      end
    elseif op == 'R' then
      if not refusal then
        writes[#writes + 1] = { 'R', owner }
      end
    else
      return redis.error_reply('roomstate_batch: unknown operation ' .. tostring(op))
    end
    answers[#answers + 1] = refusal or answer
  end
  for _, w in ipairs(writes) do
    if w[1] == 'A' then
      local log, owner, first, events_at, count, from = w[2], w[3], w[4], w[5], w[6], w[7]
      local msgs, messages_at, n, epoch = w[8], w[9], w[10], w[11]
      -- Formatted once for the room's entries (a number would be formatted again per entry).
      local owner_epoch = string.format('%d', epoch)
      for i = from, count do
        local id = entry_id(first + i - 1)
        if epoch > 0 then
          redis.call('XADD', log, id, 'e', args[events_at + i - 1], 'o', owner_epoch)
        else
          redis.call('XADD', log, id, 'e', args[events_at + i - 1])
        end
      end
      -- Only the messages of events written now: the others were archived with their events.
      local new_from = first + from - 1
      for i = 0, n - 1 do
        local seq = tonumber(args[messages_at + 2 * i])
        if seq >= new_from then
          redis.call('XADD', msgs, entry_id(seq), 'm', args[messages_at + 2 * i + 1])
        end
      end
      if from > count then
        -- Every event was already stored: still write, so the batch's WAIT covers this call.
        redis.call('HINCRBY', owner, 'resends', 1)
      end
    elseif w[1] == 'S' then
      local log, owner, seq, body, snap = w[2], w[3], w[4], w[5], w[6]
      redis.call('SET', snap, body)
      redis.call('XTRIM', log, 'MINID', tostring(seq + 1) .. '-0')
      redis.call('HSET', owner, 'snap_seq', seq)
    elseif w[1] == 'D' then
      local log, owner, snap, msgs = w[2], w[3], w[4], w[5]
      redis.call('DEL', log, snap, owner, msgs)
    elseif w[1] == 'C' then
      redis.call('HSET', w[2], 'epoch', w[3], 'node', w[4])
    else
      redis.call('HSET', w[2], 'node', '')
    end
  end
  return answers
end

redis.register_function('roomstate_batch', batch)
