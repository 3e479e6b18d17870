-- The reference: GET / on nginx, which answers a fixed 200. The request is built per call,
-- like the sidecar's, so that wrk spends the same on each request in every run.
local report = dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "report.lua")

report.install(200)

function request()
  return wrk.format("GET", "/")
end
