
if #ARGV > 1 then redis.call('SREM', KEYS[3], unpack(ARGV, 2)) end
if redis.call('SCARD', KEYS[3]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
  return 0
end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
