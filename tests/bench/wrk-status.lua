-- wrk script: counts responses by HTTP status across all threads and prints one
-- "status CODE COUNT" line per code when done (wrk itself only reports "Non-2xx or 3xx").
-- Used by tests/bench/stress-load and tests/tests/hostile.rs.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  codes = {}
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("codes")) do
      total[code] = (total[code] or 0) + n
    end
  end
  for code, n in pairs(total) do
    io.write(string.format("status %d %d\n", code, n))
  end
end
