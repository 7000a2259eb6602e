-- wrk script for benches/durable_http.rs: issue / call-next / complete over every room of the
-- demo hospital (config/demo-hospital.toml), each request a durable command. The tickets
-- call-next answers with are completed later by the complete requests (a room that called again
-- first has completed it already: that complete is refused with 409, counted apart).
local rooms = {
 {"internal-medicine","c-101"},{"internal-medicine","c-102"},{"internal-medicine","c-103"},
 {"surgery","c-104"},{"surgery","c-105"},{"pediatrics","c-106"},{"pediatrics","c-107"},
 {"gynecology","c-201"},{"gynecology","c-202"},{"ophthalmology","c-203"},{"ent","c-204"},
 {"dermatology","c-205"},{"cardiology","c-301"},{"cardiology","c-302"},{"gastroenterology","c-303"},
 {"orthopedics","c-304"},{"orthopedics","c-305"},{"neurology","c-306"},{"respiratory","c-307"},
 {"lab","lab-1"},{"lab","lab-2"},{"lab","lab-3"},{"ultrasound","us-1"},{"ultrasound","us-2"},
 {"imaging","xr-1"},{"imaging","ct-1"},{"ecg","ecg-1"},{"pharmacy","ph-1"},{"pharmacy","ph-2"}}
local token = os.getenv("BENCH_TOKEN") or "bench-staff-token-0123456789"
local hdr = {["Authorization"]="Bearer "..token, ["Content-Type"]="application/json"}
local threads = {}
function setup(thread) table.insert(threads, thread) end
local i, called = 0, {}
ok, refused, failed = 0, 0, 0
request = function()
  i = i + 1
  local r = rooms[math.floor(i / 3) % #rooms + 1]
  local k = i % 3
  if k == 2 and #called > 0 then
    return wrk.format("POST", "/api/v1/tickets/"..table.remove(called, 1).."/complete", hdr, '{}')
  elseif k == 1 then
    return wrk.format("POST", "/api/v1/queues/"..r[1].."/call-next", hdr, '{"room":"'..r[2]..'"}')
  end
  return wrk.format("POST", "/api/v1/queues/"..r[1].."/tickets", hdr, '{"patient_id":"w'..i..'","name":"张三丰"}')
end
response = function(status, headers, body)
  if status < 300 then
    ok = ok + 1
    if body:find('"status":"called"', 1, true) then
      local id = body:match('^{"id":"([^"]+)"')
      if id then called[#called + 1] = id end
    end
  elseif status == 409 then refused = refused + 1
  else failed = failed + 1 end
end
done = function(summary, latency, requests)
  local o, r, f = 0, 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); r = r + t:get("refused"); f = f + t:get("failed") end
  io.write(string.format('{"requests":%d,"ok":%d,"refused":%d,"failed":%d,"socket_errors":%d,"seconds":%.3f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, o, r, f, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
