-- wrk script of ingest_single.py: one CloudEvent per POST, application/json, each event unique.
--
--   wrk -t1 -c64 -d10s -s events.lua http://127.0.0.1:P/v1/workspaces/W/events -- TEMPLATES TOKEN IDENTITIES RUN
--
-- TEMPLATES is a file of event templates, one JSON object per line, from harness.TEMPLATES: "{n}" becomes
-- the event's unique number, "{i}" its identity number, "{p}" a phone line (as harness.event_json does).
-- RUN tells runs apart so that no two events of one database are equal. At the end it prints one line,
-- "RESULT {json}", with the counts and the latency percentiles (microseconds).

local threads = {}

function setup(thread)
   thread:set("thread_id", #threads + 1)
   table.insert(threads, thread)
end

local templates, identities, tag, counter = {}, 50000, "", 0

function init(args)
   for line in io.lines(args[1]) do
      templates[#templates + 1] = line
   end
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Authorization"] = "Bearer " .. args[2]
   identities = tonumber(args[3])
   tag = "bench-" .. args[4] .. "-" .. thread_id .. "-"
end

function request()
   counter = counter + 1
   local i = counter % identities
   local body = templates[counter % #templates + 1]
      :gsub("{n}", tag .. counter)
      :gsub("{i}", tostring(i))
      :gsub("{p}", tostring(2000000 + i))
   return wrk.format(nil, nil, nil, body)
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
