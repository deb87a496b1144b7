-- sailplan's Lua actions for the builtin sidecar. Loaded only when a route uses them, so the
-- hot path of a mesh without delays or mirrors runs no Lua at all.

-- Fault delay: core.msleep yields to the scheduler, so other requests keep flowing meanwhile.
core.register_action("sailplan_delay", { "http-req" }, function(txn, ms)
  core.msleep(tonumber(ms))
  -- The access log's response flag DI, as Envoy marks a delayed request.
  txn:set_var("txn.log_delayed", true)
end, 1)

-- Mirror: copy the request to another endpoint, fire-and-forget. The task runs detached from the
-- request, so the caller never waits on the shadow, and the shadow's answer is dropped.
core.register_action("sailplan_mirror", { "http-req" }, function(txn, base)
  local method = txn.sf:method()
  local path = txn.sf:pathq() or "/"
  local headers = txn.http:req_get_headers()
  local body = txn.sf:req_body()
  local copied = {}
  for name, values in pairs(headers) do
    local lower = string.lower(name)
    if lower ~= "content-length" and lower ~= "connection" and lower ~= "host" then
      copied[name] = {}
      for index, value in pairs(values) do copied[name][index + 1] = value end
    end
  end
  local host = headers["host"] and headers["host"][0] or ""
  -- Envoy marks shadowed requests the same way: the authority gets a "-shadow" suffix.
  copied["host"] = { host .. "-shadow" }
  copied["x-sailplan-mirror"] = { "1" }
  core.register_task(function()
    local client = core.httpclient()
    local request = { url = base .. path, headers = copied, body = body, timeout = 5000 }
    local send = ({
      GET = client.get, POST = client.post, PUT = client.put,
      DELETE = client.delete, HEAD = client.head,
    })[method] or client.get
    send(client, request)
  end)
end, 1)
