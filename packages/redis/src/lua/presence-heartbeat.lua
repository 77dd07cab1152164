
local info = redis.call('INFO', 'replication')
local at = string.find(info, 'master_replid:', 1, true)
local life = string.sub(info, at + 14, at + 53)
at = string.find(info, 'master_replid2:', 1, true)
local previous = string.sub(info, at + 15, at + 54)
local was = redis.call('HGET', KEYS[4], ARGV[2])
local back = was and was ~= life and previous ~= was
if was ~= life then redis.call('HSET', KEYS[4], ARGV[2], life) end
local added = redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local flagged = redis.call('SREM', KEYS[2], ARGV[2])
local adds = tonumber(ARGV[3])
if adds > 0 then redis.call('SADD', KEYS[3], unpack(ARGV, 4, 3 + adds)) end
if #ARGV > 3 + adds then redis.call('SREM', KEYS[3], unpack(ARGV, 4 + adds, #ARGV)) end
local code = 0
if back and added == 0 then code = 2 elseif added + flagged > 0 then code = 1 end
return {code, life, previous}
