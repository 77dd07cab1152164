
local lock = redis.call('GET', KEYS[2])
if lock then
  local colon = string.find(lock, ':', 1, true)
  local held = tonumber(string.sub(lock, 1, colon - 1))
  if string.sub(lock, colon + 1) ~= ARGV[5] and held > tonumber(ARGV[1]) then return {} end
end
redis.call('SET', KEYS[2], ARGV[3] .. ':' .. ARGV[5], 'PX', ARGV[4])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[6])
local out = {}
for _, pod in ipairs(dead) do
  if pod ~= ARGV[5] then out[#out + 1] = pod end
end
return out
