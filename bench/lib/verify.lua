-- POST /v1/verify with a wrong code for a pending challenge. The pool file (one "user code"
-- line per challenge, the code already made wrong) is read at start; request n takes line
-- n mod size, so each challenge gets one wrong code per pass over the pool. bench/run keeps
-- the passes below the challenges' max_attempts, so every answer must be "denied".
local report = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

report.install(200, '"status":"denied"')

local next_number
local users, codes = {}, {}
local headers = {["Content-Type"] = "application/json"}

-- wrk ... -- FIRST THREADS POOL_FILE
function init(args)
  next_number = report.numbering(args)
  for line in io.lines(args[3]) do
    local user, code = line:match("^(%S+) (%d+)$")
    users[#users + 1] = user
    codes[#codes + 1] = code
  end
end

function request()
  local n = next_number()
  local i = n % #users + 1
  local body = string.format('{"user":"%s","code":"%s","client_ip":"%s"}', users[i], codes[i],
                             report.address(n))
  return wrk.format("POST", "/v1/verify", headers, body)
end
