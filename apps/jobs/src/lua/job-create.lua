
local active = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if live(redis.call('HGET', ARGV[4] .. id, 'status')) then active = active + 1
  else redis.call('SREM', KEYS[2], id) end
end
if active >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return active + 1