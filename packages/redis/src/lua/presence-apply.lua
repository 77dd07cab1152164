
local users, names, grace, pod, ver = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local deadline, base = ARGV[1], ARGV[2]
local out, n, i = {}, 0, 3
while i <= #ARGV do
  if ARGV[i] == 'j' then
    local sid, uid, name = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    i = i + 4
    if redis.call('HSETNX', pod, sid, uid) == 1 then
      redis.call('HSET', names, uid, name)
      if redis.call('HINCRBY', users, uid, 1) == 1 and redis.call('HDEL', grace, uid) == 0 then
        out[#out + 1] = {'online', uid, name, next_version(ver)}
      end
    end
  else
    local sid = ARGV[i + 1]
    i = i + 2
    local uid = redis.call('HGET', pod, sid)
    if uid then
      redis.call('HDEL', pod, sid)
      if redis.call('HINCRBY', users, uid, -1) <= 0 then
        n = n + 1
        local token = base .. '.' .. n
        redis.call('HSET', grace, uid, deadline .. ':' .. token)
        out[#out + 1] = {'grace', uid, token}
      end
    end
  end
end
return out
