-- wrk script: POST one patient to /predict (or /explain, same body).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- VITALFLOW_TOKEN, when set, is sent as the bearer credential.
local token = os.getenv("VITALFLOW_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.body = '{"pregnancies": 6, "glucose": 148, "blood_pressure": 72, "skin_thickness": 35, "insulin": 0, "bmi": 33.6, "diabetes_pedigree_function": 0.627, "age": 50}'

-- Count non-2xx answers so a benchmark of errors cannot pass for a fast one
-- (wrk's own count: a `response` hook would count in each thread's Lua
-- state, which `done` cannot see).
done = function(summary, latency, requests)
  io.write(string.format("non-200 responses: %d\n", summary.errors.status))
  io.write(string.format("p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, p99.9 %.3f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
