-- wrk script for scripts/bench-negotiate: POSTs the invocation bodies in BODIES (one JSON per line), each
-- thread starting at its own offset, and prints one parseable result line when the run is done.
-- Usage: wrk -s scripts/bench-negotiate.lua URL -- BODIES

local thread_count = 0

function setup(thread)
  thread:set("offset", thread_count * 997)
  thread_count = thread_count + 1
end

function init(args)
  bodies = {}
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  index = offset or 0
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  index = index + 1
  return wrk.format("POST", nil, headers, bodies[(index % #bodies) + 1])
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("rps=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3,
    latency:percentile(99) / 1e3,
    summary.requests,
    errors.connect + errors.read + errors.write + errors.status + errors.timeout))
end
