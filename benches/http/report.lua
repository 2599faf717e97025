-- Shared by the wrk scripts (loaded with dofile from the repository root,
-- where the bench scripts run): latency percentiles and the count of
-- non-2xx answers, so a benchmark of errors cannot pass for a fast one
-- (wrk's own count: a `response` hook would count in each thread's Lua
-- state, which `done` cannot see).
done = function(summary, latency, requests)
  io.write(string.format("non-200 responses: %d\n", summary.errors.status))
  io.write(string.format("p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, p99.9 %.3f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
