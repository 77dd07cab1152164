
local info = redis.call('INFO', 'replication')
local at = string.find(info, 'master_replid:', 1, true)
local life = string.sub(info, at + 14, at + 21)
at = string.find(info, 'master_replid2:', 1, true)
local previous = string.sub(info, at + 15, at + 22)
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'offset')
if not meta[1] then return {'', 0, {}, life, previous} end
local entries = redis.call('XRANGE', KEYS[2], ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])
return {meta[1], tonumber(meta[2]), entries, life, previous}
