-- POST /v1/challenges, a new user, phone and client address in every request. Request n
-- is user "bench-n" with phone +1 206 2000000+n (a valid US number for n below 8,000,000),
-- so bench/run can tell from an SMS which user it went to.
local report = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

report.install(202, '"status":"pending"')

local next_number
local headers = {["Content-Type"] = "application/json"}

-- wrk ... -- FIRST THREADS
function init(args)
  next_number = report.numbering(args)
end

function request()
  local n = next_number()
  local body = string.format('{"user":"bench-%d","phone":"+1206%07d","client_ip":"%s"}', n,
                             2000000 + n % 8000000, report.address(n))
  return wrk.format("POST", "/v1/challenges", headers, body)
end
