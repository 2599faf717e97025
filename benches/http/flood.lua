-- wrk script: an analyst's expensive query to /api/query, sent again as soon
-- as the answer (or the refusal) comes back; counts answers per status.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- VITALFLOW_TOKEN, when set, is sent as the bearer credential.
local token = os.getenv("VITALFLOW_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.body = '{"sql": "SELECT count(*) FROM vitals a JOIN vitals b ON a.patient_id = b.patient_id AND a.ts <> b.ts"}'

-- Each wrk thread has its own Lua state: count there, collect in `done`.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  statuses = {}
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
  end
  for status, n in pairs(total) do
    io.write(string.format("   /api/query answers: %d x HTTP %d\n", n, status))
  end
end
