-- wrk script: GET /v1/me presenting a different wrong secret (well-formed, for a real key id) on every request.
local keys = {}
local index = 0

init = function(args)
  for line in io.lines(args[1]) do keys[#keys + 1] = line end
end

request = function()
  index = index % #keys + 1
  return wrk.format("GET", "/v1/me", { ["Authorization"] = "Bearer " .. keys[index] })
end
