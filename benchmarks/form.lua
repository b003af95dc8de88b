-- wrk script: a fixed form POST. Arguments: path, then the form body.
init = function(args)
  wrk.method = "POST"
  wrk.path = args[1]
  wrk.body = args[2]
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
