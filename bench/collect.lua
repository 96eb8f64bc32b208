-- wrk script for bench/collect.py: POST one fixed browser event to /collect?site=KEY as a
-- page would (a beacon: text/plain, the page's Origin, a desktop browser's User-Agent).
--   wrk ... -s bench/collect.lua URL -- BODY_FILE ORIGIN
-- done() prints one line, "BENCH_JSON {...}", in the shape of post.lua's.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

sent, ok, limited, other, accepted = 0, 0, 0, 0, 0
local prepared

function init(args)
   local handle = assert(io.open(args[1], "rb"))
   local body = handle:read("*a")
   handle:close()
   prepared = wrk.format("POST", nil, {
      ["Content-Type"] = "text/plain;charset=UTF-8",
      ["Origin"] = args[2],
      ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
         .. "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
   }, body)
end

function request()
   sent = sent + 1
   return prepared
end

function response(status, headers, body)
   if status == 204 then
      ok = ok + 1
      if headers["DataLook-Ignored"] == nil and headers["DataLook-Duplicate"] == nil then
         accepted = accepted + 1
      end
   elseif status == 429 then
      limited = limited + 1
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local total = { sent = 0, ok = 0, limited = 0, other = 0, accepted = 0 }
   for _, thread in ipairs(threads) do
      for name in pairs(total) do
         total[name] = total[name] + (thread:get(name) or 0)
      end
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"sent":%d,"ok":%d,"limited":%d,"other":%d,"accepted":%d,"requests":%d,'
         .. '"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":{"connect":%d,"read":%d,'
         .. '"write":%d,"status":%d,"timeout":%d}}\n',
      total.sent, total.ok, total.limited, total.other, total.accepted, summary.requests,
      summary.duration, latency:percentile(50), latency:percentile(99),
      e.connect, e.read, e.write, e.status, e.timeout))
end
