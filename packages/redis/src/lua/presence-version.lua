
local function next_version(key)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local v = tonumber(redis.call('GET', key) or '0') + 1
  if now > v then v = now end
  local text = string.format('%.0f', v)
  redis.call('SET', key, text, 'PX', __VERSION_TTL_MS__)
  return text
end
