-- wrk script for bench/run.py: POST one fixed body, cycling the Authorization header over
-- the given keys (one key: always the same; none: no header), and count the answers.
--   wrk ... -s bench/post.lua URL -- BODY_FILE [TOKEN ...]
-- Each wrk thread has its own Lua state; done() adds the threads' counters up and prints
-- one line, "BENCH_JSON {...}". `sent` minus `requests` is what was still in flight when
-- wrk stopped: the server may have stored those without wrk seeing the answer.

local threads = {}

function setup(thread)
   thread:set("index", #threads)
   table.insert(threads, thread)
end

sent, ok, limited, other, accepted = 0, 0, 0, 0, 0
local prepared = {}
local position = 0

local function read_file(path)
   local handle = assert(io.open(path, "rb"))
   local text = handle:read("*a")
   handle:close()
   return text
end

function init(args)
   local body = read_file(args[1])
   local headers = { ["Content-Type"] = "application/json" }
   if #args < 2 then
      prepared[1] = wrk.format("POST", nil, headers, body)
   end
   for i = 2, #args do
      headers["Authorization"] = "Bearer " .. args[i]
      prepared[#prepared + 1] = wrk.format("POST", nil, headers, body)
   end
   -- Threads start at different keys so that together they spread over all of them.
   position = (index or 0) % #prepared
end

function request()
   sent = sent + 1
   position = position % #prepared + 1
   return prepared[position]
end

function response(status, headers, body)
   if status == 204 then
      ok = ok + 1
      if headers["DataLook-Duplicate"] == nil then
         accepted = accepted + 1
      end
   elseif status >= 200 and status < 300 then
      ok = ok + 1
      local n = body and body:match('"accepted"%s*:%s*(%d+)')
      if n then
         accepted = accepted + tonumber(n)
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
