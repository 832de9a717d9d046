-- wrk script: POST /v1/batch with 100 track/page messages over 1,000 leads, every messageId
-- unique (run tag, thread, request, message). Arguments after `--`: run tag, Authorization,
-- number of leads (default 1,000).
-- `done` prints one JSON line: 2xx and other answers, and the latency percentiles (ms).

local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  tag = args[1] or "run"
  auth = args[2] or ""
  leads = tonumber(args[3] or "1000")
  ok, other, sent = 0, 0, 0
  stamp = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 60)
end

function request()
  sent = sent + 1
  local parts = {}
  for i = 1, 100 do
    local k = sent * 100 + i
    local lead = (k * 7919 + id * 104729) % leads
    local mid = string.format("%s-%d-%d-%d", tag, id, sent, i)
    if i % 4 == 2 then
      parts[i] = string.format('{"type":"page","userId":"lead-%d","messageId":"%s",' ..
        '"timestamp":"%s","properties":{"path":"/pricing","title":"Pricing"}}', lead, mid, stamp)
    else
      parts[i] = string.format('{"type":"track","userId":"lead-%d","messageId":"%s",' ..
        '"timestamp":"%s","event":"Clicked","properties":{"button":"signup","n":%d}}',
        lead, mid, stamp, k)
    end
  end
  local body = '{"batch":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/v1/batch", {["Content-Type"] = "application/json",
                                          ["Authorization"] = auth}, body)
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local good, bad = 0, 0
  for _, thread in ipairs(threads) do
    good = good + thread:get("ok")
    bad = bad + thread:get("other")
  end
  io.write(string.format('{"ok": %d, "other": %d, "seconds": %.3f, "errors": %d, ' ..
    '"p50_ms": %.3f, "p99_ms": %.3f}\n', good, bad, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
