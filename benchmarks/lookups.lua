-- wrk script of person_lookup.py: each request GETs the URL's path followed by a random stored phone
-- number, its "+" encoded ("%2B1226" .. line, lines 2000000 .. 2000000 + PERSONS - 1); PERSONS = 0 GETs
-- the URL's path as it is (the baseline).
--
--   wrk -t1 -c4 -d10s -s lookups.lua http://127.0.0.1:P/admin/v1/api/person/workspace-id/W/aliases/ -- TOKEN PERSONS
--
-- At the end it prints one line, "RESULT {json}", as events.lua does.

local threads = {}

function setup(thread)
   thread:set("thread_id", #threads + 1)
   table.insert(threads, thread)
end

local persons = 0

function init(args)
   wrk.headers["Authorization"] = "Bearer " .. args[1]
   persons = tonumber(args[2])
   math.randomseed(os.time() * 100 + thread_id)
end

function request()
   if persons == 0 then
      return wrk.format("GET")
   end
   return wrk.format("GET", wrk.path .. "%2B1226" .. tostring(2000000 + math.random(0, persons - 1)))
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'RESULT {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,"timeouts":%d,'
         .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, e.status, e.connect + e.read + e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean
   ))
end
