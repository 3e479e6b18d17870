-- Shared by the wrk scripts of bench/run: numbers each thread's requests, counts answers
-- that are not the expected one, and prints one summary line that bench/run reads.
--
-- A script calls report.install(status, text): an answer counts as expected when its status
-- is `status` and, when `text` is given, its body holds that plain substring. Each thread
-- counts in its own Lua state; done() adds the counts up through thread:get().
local report = {}

local threads = {}

function report.install(status, text)
  function setup(thread)
    thread:set("thread_index", #threads)
    table.insert(threads, thread)
  end

  unexpected = 0
  function response(answer_status, headers, body)
    if answer_status ~= status or (text ~= nil and not string.find(body, text, 1, true)) then
      unexpected = unexpected + 1
    end
  end

  function done(summary, latency, requests)
    local wrong = 0
    for _, thread in ipairs(threads) do
      wrong = wrong + thread:get("unexpected")
    end
    local e = summary.errors
    io.write(string.format("BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d " ..
                             "unexpected=%d socket_errors=%d timeouts=%d\n",
                           summary.requests, summary.duration, latency:percentile(50),
                           latency:percentile(99), wrong, e.connect + e.read + e.write,
                           e.timeout))
  end
end

-- Returns a function giving this thread's next request number. init(args) gets the first
-- number and the thread count from bench/run (wrk ... -- FIRST THREADS); numbers interleave
-- across threads, so no two requests of a run, or of runs that continue a sequence, share one.
function report.numbering(args)
  local first = tonumber(args[1]) or 0
  local stride = tonumber(args[2]) or 1
  local sent = 0
  return function()
    local n = first + sent * stride + thread_index
    sent = sent + 1
    return n
  end
end

-- The client address of request n: one of the 131,072 addresses of 198.18.0.0/15 (set
-- aside for benchmarks), in turn, so that each per-address limit key sees a few events.
function report.address(n)
  local host = n % 131072
  return string.format("198.%d.%d.%d", 18 + math.floor(host / 65536),
                       math.floor(host / 256) % 256, host % 256)
end

return report
