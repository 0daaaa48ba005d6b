-- One wrk script for every bridge scenario (bench/run.py sets the environment):
--   BENCH_OP    lookup | get | list | listdeep | cursor | create | patch | addmember | delete
--   BENCH_DATA  a Lua file returning {users=N, ids={...}, victims={...}, outsiders={...},
--               big="group id", deep=startIndex, tag="run tag"}
--   BENCH_TOKEN bearer token
-- done() prints one JSON line with the request count, errors and latency percentiles (µs).

local op = os.getenv("BENCH_OP")
local data = dofile(os.getenv("BENCH_DATA"))
local auth = "Bearer " .. os.getenv("BENCH_TOKEN")
local base = "/scim/v2"
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + tid * 7919)
  stride = tonumber(os.getenv("BENCH_THREADS") or "1") -- wrk threads: disjoint sequences
  n = tid
end

local function headers(extra)
  local h = {["Authorization"] = auth, ["Accept"] = "application/scim+json"}
  if extra then h["Content-Type"] = "application/scim+json" end
  return h
end

local function next_n()
  local v = n
  n = n + stride
  return v
end

function request()
  if op == "lookup" then
    local uid = string.format("user%06d", math.random(0, data.users - 1))
    return wrk.format("GET", base .. "/Users?filter=userName%20eq%20%22" .. uid .. "%22", headers())
  elseif op == "get" then
    return wrk.format("GET", base .. "/Users/" .. data.ids[math.random(1, #data.ids)], headers())
  elseif op == "list" then
    return wrk.format("GET", base .. "/Users?startIndex=1&count=100", headers())
  elseif op == "cursor" then
    -- an RFC 9865 cursor walk: each thread follows the nextCursor of its last page and starts
    -- over after the last one (connections of a thread share the walk)
    return wrk.format("GET", base .. "/Users?count=100&cursor=" .. (cursor or ""), headers())
  elseif op == "listdeep" then
    return wrk.format("GET", base .. "/Users?startIndex=" .. data.deep .. "&count=100", headers())
  elseif op == "create" then
    local name = string.format("w%s-%d-%d", data.tag, tid, next_n())
    local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. name
      .. '","name":{"givenName":"Bench","familyName":"User"},"displayName":"Bench ' .. name
      .. '","emails":[{"value":"' .. name .. '@example.org","type":"work","primary":true}]}'
    return wrk.format("POST", base .. "/Users", headers(true), body)
  elseif op == "patch" then
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":'
      .. '[{"op":"replace","path":"displayName","value":"Patched ' .. math.random() .. '"}]}'
    return wrk.format("PATCH", base .. "/Users/" .. data.ids[math.random(1, #data.ids)],
      headers(true), body)
  elseif op == "addmember" then
    local who = data.outsiders[(next_n() % #data.outsiders) + 1]
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":'
      .. '[{"op":"add","path":"members","value":[{"value":"' .. who .. '"}]}]}'
    return wrk.format("PATCH", base .. "/Groups/" .. data.big .. "?excludedAttributes=members",
      headers(true), body)
  elseif op == "delete" then
    local i = next_n() + 1
    if i > #data.victims then i = #data.victims end -- exhausted: 404s, counted as errors
    return wrk.format("DELETE", base .. "/Users/" .. data.victims[i], headers())
  end
end

if op == "cursor" then
  function response(status, headers, body)
    if status == 200 then
      cursor = body:match('"nextCursor":"([^"]*)"') -- nil after the last page: start over
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,'
    .. '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
