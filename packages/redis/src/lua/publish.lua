
if KEYS[4] and ARGV[1] == 'publish' then
  local seen = redis.call('GET', KEYS[4])
  if seen then
    local first = string.find(seen, ':', 1, true)
    local second = string.find(seen, ':', first + 1, true)
    local offset = tonumber(string.sub(seen, 1, first - 1))
    local epoch = string.sub(seen, first + 1, (second or 0) - 1)
    local fingerprint = second and string.sub(seen, second + 1) or ''
    if fingerprint ~= ARGV[10] then return {epoch, offset, 2} end
    -- A write (the key's own expiry, unchanged), so that a WAIT after this replay counts the
    -- replicas that hold the first publish too, not only this connection's older writes.
    local ttl = redis.call('PTTL', KEYS[4])
    if ttl > 0 then redis.call('PEXPIRE', KEYS[4], ttl) end
    return {epoch, offset, 1}
  end
end
local info = redis.call('INFO', 'replication')
local at = string.find(info, 'master_replid:', 1, true)
local life = string.sub(info, at + 14, at + 53)
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'life')
local epoch = meta[1]
local lost = epoch and meta[2] and meta[2] ~= life
if lost then
  at = string.find(info, 'master_replid2:', 1, true)
  lost = string.sub(info, at + 15, at + 54) ~= meta[2]
end
if not epoch or lost then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'offset', 0, 'life', life)
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('DEL', KEYS[2])
elseif meta[2] ~= life then
  redis.call('HSET', KEYS[1], 'life', life)
end
if ARGV[1] == 'position' then
  -- A read is a use: it keeps the channel as long as a publish would (pods with subscribers
  -- read every position-check interval), and a channel only read lives one TTL, no more.
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  return {epoch, tonumber(redis.call('HGET', KEYS[1], 'offset'))}
end
if ARGV[1] == 'rebase' then
  local colon = string.find(ARGV[3], ':', 1, true)
  local seen = tonumber(string.sub(ARGV[3], 1, colon - 1))
  local rest = string.sub(ARGV[3], colon + 1)
  local flag = string.find(rest, ':', 1, true)
  local seenEpoch = flag and string.sub(rest, 1, flag - 1) or rest
  local conflict = flag ~= nil
  local offset = tonumber(redis.call('HGET', KEYS[1], 'offset'))
  if epoch ~= seenEpoch or (offset >= seen and not conflict) then return {epoch, offset} end
  redis.call('HSET', KEYS[1], 'epoch', ARGV[2], 'offset', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('DEL', KEYS[2])
  return {ARGV[2], 0}
end
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local tag = string.sub(life, 1, 8)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], offset .. '-0', 'd', ARGV[3], 'l', tag)
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call(ARGV[7], KEYS[3], epoch .. ':' .. offset .. ARGV[8] .. ':' .. tag .. ':' .. ARGV[3])
if KEYS[4] then
  redis.call('SET', KEYS[4], offset .. ':' .. epoch .. ':' .. ARGV[10], 'NX', 'PX', ARGV[9])
end
return {epoch, offset}
