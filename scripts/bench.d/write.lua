-- Scenario a: POST /api/v1/events, ~500-byte body, a fresh Idempotency-Key per
-- request, tokens (hence orgs) in rotation.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(dir .. "common.lua")
local tokens = bench.tokens()

setup = bench.setup
done = bench.done

local tid, counter, slot, run_id
-- ~330 bytes of filler: with the other fields the body is ~500 bytes.
local bio = string.rep("Soul profile text for the benchmark. ", 9)

function init(args)
   -- thread_id is the global bench.setup gave this thread's Lua state.
   tid = tonumber(rawget(_G, "thread_id")) or 0
   -- BENCH_RUN_ID keeps keys distinct across runs; the random part across
   -- threads started in the same second.
   math.randomseed(os.time() + tid * 7919)
   run_id = (os.getenv("BENCH_RUN_ID") or "run") .. "-" .. string.format("%06x", math.random(0, 0xffffff))
   counter = 0
   slot = tid % #tokens
end

function request()
   counter = counter + 1
   slot = slot % #tokens + 1
   local body = string.format(
      '{"type":"xentri.bench.sample.v1","payload":{"soul_id":"soul-%d-%d","display_name":"Bench Soul %d",'
         .. '"revision":%d,"locale":"en-GB","tags":["bench","load","soul"],"bio":"%s"}}',
      tid, counter, counter % 1000, counter, bio)
   return wrk.format("POST", "/api/v1/events", {
      ["Authorization"] = "Bearer " .. tokens[slot],
      ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = string.format("bench-%s-t%d-%d", run_id, tid, counter),
   }, body)
end
