-- wrk script: refresh-token rotation chains. A pool of refresh tokens; each request takes one, and the answer's new
-- refresh token goes back into the pool. Arguments: tokens file, client_id, client_secret.
local pool = {}
local client = ""
local pending = {}

init = function(args)
  for line in io.lines(args[1]) do pool[#pool + 1] = line end
  client = "&client_id=" .. args[2] .. "&client_secret=" .. args[3]
end

request = function()
  local token = table.remove(pool, 1)
  pending[#pending + 1] = token
  return wrk.format("POST", "/oauth/token", { ["Content-Type"] = "application/x-www-form-urlencoded" },
    "grant_type=refresh_token&refresh_token=" .. token .. client)
end

response = function(status, headers, body)
  local sent = table.remove(pending, 1)
  local fresh = body:match('"refresh_token"%s*:%s*"([^"]+)"')
  pool[#pool + 1] = fresh or sent
end
