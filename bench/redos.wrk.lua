-- ReDoS bench: every request carries a fresh x-probe value (HAProxy caches regex results per
-- value, so a repeated value would measure the cache). BENCH_PROBE_BODY is repeated
-- BENCH_PROBE_REPEAT times, then the request counter and BENCH_PROBE_TAIL: for the hostile
-- runs that is where a catastrophic pattern fails after consuming the body.
local body = string.rep(os.getenv("BENCH_PROBE_BODY") or "a", tonumber(os.getenv("BENCH_PROBE_REPEAT") or "1"))
local tail = os.getenv("BENCH_PROBE_TAIL") or ""
local counter = 0

function init(args)
  counter = math.random(1, 1000000000)
end

function request()
  counter = counter + 1
  return wrk.format(nil, "/", { ["x-probe"] = body .. counter .. tail })
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect + errors.read + errors.write + errors.timeout, errors.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
