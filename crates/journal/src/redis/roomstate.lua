#!lua name=roomstate_runs

-- The Redis journal's one write: a batch of room operations, checked and applied all-or-nothing
-- on the server (docs/architecture.md "The Redis journal"). Loaded with FUNCTION LOAD
-- REPLACE at connect, and again on each new primary.
--
-- FCALL roomstate_batch_runs <4 * rooms> <log> <snap> <owner> <msgs> ... <op args...>
--
-- (The library's and the function's names carry the log's format, runs of events per entry: an
-- engine of an older format loads and calls its own, and never calls this one with its
-- arguments.)
--
-- Keys, four per operation, all under the room's hash tag (so a batch splits per slot under
-- Redis Cluster): the room's stream of events, its snapshot (a JSON string), its owner hash
-- {node, epoch, snap_seq, resends}, and its stream of chat messages (every message of the room,
-- which a snapshot does not trim: a room keeps only the newest in memory).
-- Arguments, per operation in key order:
--   "A" <epoch> <first seq> <count> <events> <n> (<seq> <message json>) x n
--                                                       append events first..first+count-1 (their
--                                                       JSON, one per line), and the messages
--                                                       they post
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
-- The log holds one entry per room per call: the new events of the append, with the id of the
-- last one; a lone event as "e" <json>, several as "f" <first seq> "b" <their JSON, one per
-- line> (crates/journal/src/redis/entry.rs reads both). Events appended under an epoch above 0
-- carry it in their entry (field "o"), so a reader of the log sees where an owner took over: the
-- new owner replayed the room with nobody present.
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
  if #top > 0 then
    return tonumber((string.match(top[1][1], '^(%d+)')))
  end
  if snap_seq > 0 or redis.call('EXISTS', log) == 0 then
    return snap_seq
  end
  -- Trimmed empty by a snapshot of an engine that did not yet note snap_seq in the owner hash:
  -- the stream still knows the id of the last entry it took.
  local info = redis.call('XINFO', 'STREAM', log)
  for i = 1, #info - 1, 2 do
    if info[i] == 'last-generated-id' then
      return tonumber((string.match(info[i + 1], '^(%d+)'))) or 0
    end
  end
  return snap_seq
end

-- A stream entry id for a seq, formatted as an integer (tostring would format a float).
local function entry_id(seq)
  return string.format('%d-0', seq)
end

-- The events first..upto as the log holds them, by seq (a seq the log lacks is absent): one
-- XRANGE from the entry at or above `first` (an entry holds one event, "e", or a run from "f"
-- to its id, "b", one per line), at most one entry per event, each run's text cut once.
local function stored_events(log, first, upto)
  local stored = {}
  local entries = redis.call('XRANGE', log, entry_id(first), '+', 'COUNT', upto - first + 1)
  for _, entry in ipairs(entries) do
    local last = tonumber((string.match(entry[1], '^(%d+)')))
    local fields = entry[2]
    local one, from, run
    for i = 1, #fields - 1, 2 do
      local name = fields[i]
      if name == 'e' then
        one = fields[i + 1]
      elseif name == 'f' then
        from = tonumber(fields[i + 1])
      elseif name == 'b' then
        run = fields[i + 1]
      end
    end
    if run ~= nil and from ~= nil then
      local seq, at = from, 1
      while seq <= last and seq <= upto do
        local newline = string.find(run, '\n', at, true)
        if seq >= first then
          stored[seq] = string.sub(run, at, (newline or (#run + 1)) - 1)
        end
        if newline == nil then
          break
        end
        at = newline + 1
        seq = seq + 1
      end
    elseif run == nil and one ~= nil and last >= first and last <= upto then
      stored[last] = one
    end
    if last >= upto then
      break
    end
  end
  return stored
end

-- Where each event starts in `events` (one per line): a table of `count` byte offsets, or nil
-- when it does not hold `count` lines, or a line is empty.
local function line_starts(events, count)
  local starts = { 1 }
  local at = 1
  for i = 2, count do
    local newline = string.find(events, '\n', at, true)
    if newline == nil or newline == at then
      return nil
    end
    at = newline + 1
    starts[i] = at
  end
  if at > #events or string.find(events, '\n', at, true) ~= nil then
    return nil
  end
  return starts
end

-- Checks one append of the `count` events in `events` (one per line); returns the refusal, or
-- nil, the index (1-based) of the first new event and where each event starts in `events`.
-- An append whose text does not hold `count` lines is an error of the caller's.
local function check_append(log, snap_seq, first, events, count)
  local starts = line_starts(events, count)
  if starts == nil then
    return redis.error_reply('roomstate_batch_runs: an append of ' .. tostring(count)
      .. ' events holds another number of lines')
  end
  local top = last_seq(log, snap_seq)
  if first > top + 1 then
    return 'GAP ' .. tostring(top + 1)
  end
  -- Events at or below the top must be exactly what is stored (a re-send after a lost reply);
  -- those trimmed away by a snapshot were made durable by this room's owner before it.
  local upto = math.min(top, first + count - 1)
  local from = math.max(first, snap_seq + 1)
  local stored = {}
  if from <= upto then
    stored = stored_events(log, from, upto)
  end
  for i = 1, count do
    local seq = first + i - 1
    if seq > top then
      return nil, i, starts
    end
    if seq > snap_seq then
      local sent = string.sub(events, starts[i], (starts[i + 1] or (#events + 2)) - 2)
      if stored[seq] ~= sent then
        return 'CONFLICT ' .. tostring(seq)
      end
    end
  end
  return nil, count + 1, starts
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
      -- The messages stay where they are in args: their position is noted.
      local first = tonumber(args[a])
      local count = tonumber(args[a + 1])
      local events = args[a + 2]
      local n = tonumber(args[a + 3])
      local messages_at = a + 4
      a = a + 4 + 2 * n
      local from, starts
      if not refusal then
        refusal, from, starts = check_append(log, snap_seq, first, events, count)
        if type(refusal) == 'table' then
          return refusal
        end
      end
      if not refusal then
        writes[#writes + 1] =
          { 'A', log, owner, first, events, count, from, starts, msgs, messages_at, n, epoch }
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
      return redis.error_reply('roomstate_batch_runs: unknown operation ' .. tostring(op))
    end
    answers[#answers + 1] = refusal or answer
  end
  for _, w in ipairs(writes) do
    if w[1] == 'A' then
      local log, owner, first, events, count = w[2], w[3], w[4], w[5], w[6]
      local from, starts, msgs, messages_at, n, epoch = w[7], w[8], w[9], w[10], w[11], w[12]
      if from <= count then
        -- One entry: the new events, with the last one's id.
        local fields
        if from > 1 then
          events = string.sub(events, starts[from])
        end
        if from == count then
          fields = { 'e', events }
        else
          fields = { 'f', string.format('%d', first + from - 1), 'b', events }
        end
        if epoch > 0 then
          fields[#fields + 1] = 'o'
          fields[#fields + 1] = string.format('%d', epoch)
        end
        redis.call('XADD', log, entry_id(first + count - 1), unpack(fields))
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

redis.register_function('roomstate_batch_runs', batch)
