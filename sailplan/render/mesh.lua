-- sailplan's Lua actions for the builtin sidecar. Loaded only when a route uses them, so the
-- hot path of a mesh without delays or mirrors runs no Lua at all.

-- Fault delay: core.msleep yields to the scheduler, so other requests keep flowing meanwhile.
core.register_action("sailplan_delay", { "http-req" }, function(txn, ms)
  core.msleep(tonumber(ms))
  -- The access log's response flag DI, as Envoy marks a delayed request.
  txn:set_var("txn.log_delayed", true)
end, 1)

-- Mirror: copy the request to the listener of the mirror version, fire-and-forget. The task runs
-- detached from the request, so the caller never waits on the shadow, and the shadow's answer is
-- dropped. The copy is written by hand over a socket so every method, header and body goes as it
-- came (HAProxy 2.6's httpclient knows only GET, HEAD, PUT, POST and DELETE); the listener
-- spreads the copies over the version's pods.
core.register_action("sailplan_mirror", { "http-req" }, function(txn, target)
  local headers = txn.http:req_get_headers()
  local body = txn.sf:req_body() or ""
  local host = headers["host"] and headers["host"][0] or ""
  -- Envoy marks shadowed requests the same way: the authority gets a "-shadow" suffix.
  local lines = { txn.sf:method() .. " " .. (txn.sf:pathq() or "/") .. " HTTP/1.1",
                  "host: " .. host .. "-shadow", "x-sailplan-mirror: 1" }
  for name, values in pairs(headers) do
    local lower = string.lower(name)
    if lower ~= "content-length" and lower ~= "connection" and lower ~= "host"
        and lower ~= "transfer-encoding" then
      for _, value in pairs(values) do lines[#lines + 1] = name .. ": " .. value end
    end
  end
  lines[#lines + 1] = "content-length: " .. #body
  lines[#lines + 1] = "connection: close"
  local copy = table.concat(lines, "\r\n") .. "\r\n\r\n" .. body
  core.register_task(function()
    local socket = core.tcp()
    socket:settimeout(5)
    if socket:connect(target) then
      socket:send(copy)
      -- Read the answer to its end, so the listener finishes the copy before the close.
      socket:receive("*a")
    end
    socket:close()
  end)
end, 1)
