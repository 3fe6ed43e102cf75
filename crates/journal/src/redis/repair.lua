#!lua
-- Putting back, on a new primary, acknowledged events it lacks (repair.rs), under the room's
-- lease: an event written under an epoch below the one the room's owner hash holds now does not
-- go back. Another node claimed the room since (this one was cut off past its lease): it
-- replayed the log without these events and numbers its own from where that log stopped, so
-- writing them would clash with its own. An owner hash at the event's epoch, or below it (the
-- failover lost the claim too: a new room's, or one made at start), takes them back.
--
-- Sent with EVAL (not loaded as a function): an engine of another version replacing the
-- function library cannot take it away. The `#!lua` line makes Redis treat it as a script that
-- writes: refused whole under OOM, before it runs.
--
-- EVAL <script> 3 <log> <owner> <msgs> (<seq> <epoch> <event json> <message json or "">) ...
--
-- Each event goes back as an entry of its own, `<seq>-0` with "e" <json> (and "o" <epoch> when
-- the epoch is above 0, as the batch function writes it), its chat message beside it in the
-- room's archive. An entry the log has already (a repair cut short, retried) is left as it is.
--
-- Answer: { events kept (written now or there already), events refused (a newer lease),
--           the owner hash's epoch, its node, the lowest seq kept (0: none) }

local o = redis.call('HMGET', KEYS[2], 'epoch', 'node')
local epoch, node = tonumber(o[1] or '0') or 0, o[2] or ''
local kept, refused, lowest = 0, 0, 0

-- XADD that takes "already there" (an id at or below the stream's top) as done; true when it
-- wrote, false when the entry was there. Any other error ends the script.
local function put(key, id, ...)
  local reply = redis.pcall('XADD', key, id, ...)
  if type(reply) == 'table' and reply.err then
    if string.find(reply.err, 'equal or smaller', 1, true) then
      return false
    end
    return redis.error_reply(reply.err)
  end
  return true
end

for i = 1, #ARGV, 4 do
  local seq, event_epoch, event, message = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if tonumber(event_epoch) < epoch then
    refused = refused + 1
  else
    local id = seq .. '-0'
    local wrote
    if epoch > 0 then
      wrote = put(KEYS[1], id, 'e', event, 'o', event_epoch)
    else
      wrote = put(KEYS[1], id, 'e', event)
    end
    if type(wrote) == 'table' then
      return wrote
    end
    if wrote and message ~= '' then
      local archived = put(KEYS[3], id, 'm', message)
      if type(archived) == 'table' then
        return archived
      end
    end
    kept = kept + 1
    if lowest == 0 then
      lowest = tonumber(seq)
    end
  end
end
return { kept, refused, epoch, node, lowest }
