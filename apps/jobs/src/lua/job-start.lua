
if not live(redis.call('HGET', KEYS[1], 'status')) then return false end
redis.call('HSET', KEYS[1], 'status', 'running', 'updatedAt', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'attempt', 1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])