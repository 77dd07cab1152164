
local reply = KEYS[#KEYS]
local cached = redis.call('GET', reply)
if cached then return cjson.decode(cached) end
local function run()
__BODY__
end
local out = run()
if #out > 0 then redis.call('SET', reply, cjson.encode(out), 'PX', __REPLY_TTL_MS__) end
return out
