-- Shared by write.lua and read.lua (wrk loads one script; each does dofile on
-- this file). wrk runs a separate Lua state per thread plus one for setup() and
-- done(), so this file is evaluated in each of them.

local bench = {}

-- The bearer tokens, one per line, written by scripts/bench (BENCH_TOKENS).
function bench.tokens()
   local path = os.getenv("BENCH_TOKENS") or error("BENCH_TOKENS is not set")
   local tokens = {}
   for line in io.lines(path) do
      if line ~= "" then tokens[#tokens + 1] = line end
   end
   if #tokens == 0 then error("no tokens in " .. path) end
   return tokens
end

-- Numbers the threads (a global `thread_id` in each thread's Lua state) so
-- each can pick distinct keys and a distinct start in the token rotation.
local next_id = 0
function bench.setup(thread)
   thread:set("thread_id", next_id)
   next_id = next_id + 1
end

-- One machine-parsable line, read by scripts/bench:
--   BENCH_RESULT requests=N duration_s=S rps=R p50_ms=.. p95_ms=.. p99_ms=.. max_ms=..
--                non2xx=N connect_errors=N read_errors=N write_errors=N timeouts=N
--                bytes_per_answer=N
-- latency:percentile() is in microseconds. wrk counts a status >= 400 in
-- errors.status (the api answers no 1xx/3xx, so that is every non-2xx).
function bench.done(summary, latency, requests)
   local seconds = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      "BENCH_RESULT requests=%d duration_s=%.2f rps=%.1f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f max_ms=%.2f "
         .. "non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d bytes_per_answer=%d\n",
      summary.requests, seconds, summary.requests / seconds,
      latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
      latency.max / 1000,
      e.status, e.connect, e.read, e.write, e.timeout,
      summary.requests > 0 and summary.bytes / summary.requests or 0))
end

return bench
