
local status = redis.call('HGET', KEYS[1], 'status')
if not live(status) then return -1 end
if status ~= 'running' then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'progress')) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[1], 'updatedAt', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1