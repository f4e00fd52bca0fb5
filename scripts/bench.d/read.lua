-- Scenario b: GET /api/v1/events?limit=50, tokens (hence orgs) in rotation.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(dir .. "common.lua")
local tokens = bench.tokens()

setup = bench.setup
done = bench.done

local requests, slot

function init(args)
   -- The requests never change: format them once.
   requests = {}
   for i, token in ipairs(tokens) do
      requests[i] = wrk.format("GET", "/api/v1/events?limit=50", { ["Authorization"] = "Bearer " .. token })
   end
   slot = (tonumber(rawget(_G, "thread_id")) or 0) % #requests
end

function request()
   slot = slot % #requests + 1
   return requests[slot]
end
