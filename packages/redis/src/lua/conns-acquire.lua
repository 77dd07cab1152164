
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fields = redis.call('HGETALL', KEYS[1])
local others = 0
for i = 1, #fields, 2 do
  local pod = fields[i]
  if pod ~= ARGV[1] then
    local value = fields[i + 1]
    local sep = string.find(value, ':', 1, true)
    local count = tonumber(string.sub(value, 1, sep - 1)) or 0
    local expires = tonumber(string.sub(value, sep + 1)) or 0
    if expires <= now then
      redis.call('HDEL', KEYS[1], pod)
    else
      others = others + count
    end
  end
end
local mine = tonumber(ARGV[2])
if others + mine > tonumber(ARGV[4]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], mine .. ':' .. (now + tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
