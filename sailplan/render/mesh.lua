-- sailplan's Lua actions for the builtin sidecar. Loaded only when the mesh uses them, so the
-- hot path of a mesh without delays, mirrors, outlier detection or mTLS runs no Lua at all.

-- The caller's SPIFFE ID: the URI entry (DER tag 0x86, then its length) of the SAN of the
-- client certificate, already verified against the mesh CA. HAProxy 2.6 has no fetch for a SAN;
-- the inbound listener calls this once per connection and keeps the answer in sess.peer.
core.register_fetches("sailplan_peer", function(txn)
  local der = txn.f:ssl_c_der()
  if der == nil then return nil end
  local from = 1
  while true do
    local at = string.find(der, "spiffe://", from, true)
    if at == nil then return nil end
    local size = nil
    if at > 2 and der:byte(at - 2) == 0x86 and der:byte(at - 1) < 0x80 then
      size = der:byte(at - 1)
    elseif at > 3 and der:byte(at - 3) == 0x86 and der:byte(at - 2) == 0x81 then
      size = der:byte(at - 1)
    end
    if size ~= nil then return der:sub(at, at + size - 1) end
    from = at + 1
  end
end)

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

-- Outlier detection, as Envoy's: passive, from the answers endpoints give, never from a probe.
-- State is kept per cluster (Istio makes one of each version's subset and one of the service
-- without subset) and per host of it (a server name). A cluster's servers stand in every
-- section that sends to it (one per route, plus a route timeout's attempts listener), so an
-- ejection sets the server to maintenance in each of them. The state lives in this process
-- only: a reload starts every host afresh, as new Envoy clusters would.
local outlier_clusters = {}

-- Envoy's default max_ejection_time (Istio sets none), or the base time when that is longer.
local OUTLIER_MAX_EJECTION_MS = 300000

local function outlier_now_ms()
  local now = core.now()
  return now.sec * 1000 + now.usec // 1000
end

local function outlier_servers(cluster, name)
  local found = {}
  for _, backend in ipairs(cluster.members) do
    local proxy = core.backends[backend]
    local server = proxy and proxy.servers[name]
    if server then found[#found + 1] = server end
  end
  return found
end

local function outlier_address(cluster, name)
  local server = outlier_servers(cluster, name)[1]
  return server and server:get_addr() or "<unknown>"
end

-- Envoy counts every host of the cluster; here, every server slot with an address (the
-- slots of a server-template that DNS has not filled are no hosts).
local function outlier_host_count(cluster)
  local proxy = core.backends[cluster.members[1]]
  local count = 0
  for _, server in pairs(proxy and proxy.servers or {}) do
    local status = server:get_stats()["status"] or ""
    if server:get_addr() ~= "<unknown>" and not string.find(status, "resolution", 1, true) then
      count = count + 1
    end
  end
  return count
end

-- The proxy calls the action for every 5xx answer, and for other answers only from a server
-- listed in the map: a Lua call per answer would halve the proxy's throughput, and an answer
-- that resets a count of 0 changes nothing. A host is listed, once per section holding it,
-- while one of its counts is above 0.
local function outlier_listed(cluster, name, host)
  local counting = host.errors > 0 or host.gateway > 0
  if counting == host.listed then return end
  host.listed = counting
  for _, backend in ipairs(cluster.members) do
    if counting then
      core.set_map(cluster.map, name .. "@" .. backend, "1")
    else
      core.del_map(cluster.map, name .. "@" .. backend)
    end
  end
end

local function outlier_readmit(cluster, name, host, now)
  for _, server in ipairs(outlier_servers(cluster, name)) do server:set_ready() end
  host.ejected_at = nil
  host.unejected_at = now
  -- Envoy resets the counters too, so a host just back is not ejected again by the few errors
  -- it had counted before.
  host.errors, host.gateway = 0, 0
  outlier_listed(cluster, name, host)
  cluster.ejected = cluster.ejected - 1
end

-- A counter reached its limit. Envoy ejects unless that would take the share of ejected hosts
-- past maxEjectionPercent (so with 2 hosts and 50%, one may be out, never both; and with 10%,
-- neither), and resets the counter either way.
local function outlier_limit_reached(cluster, name, host, counter)
  if host.ejected_at then return end
  local hosts = outlier_host_count(cluster)
  if hosts > 0 and 100 * (cluster.ejected + 1) / hosts <= cluster.max_percent then
    host.ejected_at = outlier_now_ms()
    cluster.ejected = cluster.ejected + 1
    -- The ejection time is base x this multiplier: one more per ejection, up to the cap.
    if host.backoff * cluster.base < cluster.max_time + cluster.base then
      host.backoff = host.backoff + 1
    end
    for _, server in ipairs(outlier_servers(cluster, name)) do server:set_maint() end
  end
  host[counter] = 0
end

-- Every `interval`, as Envoy's sweep: readmit each host out for base x multiplier, then take
-- one off the multiplier of each host that has stayed in for a whole interval since it came
-- back, so a host that keeps answering well returns to the base time step by step.
local function outlier_sweep(cluster)
  while true do
    core.msleep(cluster.interval)
    local now = outlier_now_ms()
    for name, host in pairs(cluster.hosts) do
      if outlier_address(cluster, name) ~= host.address then
        -- DNS gave the slot to another pod: a new host, with no history.
        if host.ejected_at then outlier_readmit(cluster, name, host, now) end
        host.errors, host.gateway = 0, 0
        outlier_listed(cluster, name, host)
        cluster.hosts[name] = nil
      elseif host.ejected_at
          and math.min(cluster.base * host.backoff, cluster.max_time) <= now - host.ejected_at then
        outlier_readmit(cluster, name, host, now)
      end
    end
    for _, host in pairs(cluster.hosts) do
      if not host.ejected_at and host.unejected_at and host.backoff > 0
          and now - host.unejected_at >= cluster.interval then
        host.backoff = host.backoff - 1
      end
    end
  end
end

-- Runs on each answer of each attempt (a tcp-response rule, so before HAProxy decides on a
-- retry: retried answers count, as every attempt's do for Envoy). Envoy counts a 5xx against
-- consecutive5xxErrors and a 502, 503 or 504 against consecutiveGatewayErrors too; any other
-- answer resets both. A limit of 0 never matches. `map`: the file of the hosts listed.
core.register_action("sailplan_outlier", { "tcp-res" }, function(txn, map, cluster_name, members,
    errors_limit, gateway_limit, base, max_percent, interval)
  local status = tonumber(txn.sf:status())
  local name = txn.sf:srv_name()
  if status == nil or status < 200 or name == nil then return end
  local cluster = outlier_clusters[cluster_name]
  if cluster == nil then
    local member_list = {}
    for backend in string.gmatch(members, "[^,]+") do member_list[#member_list + 1] = backend end
    cluster = {
      map = map, members = member_list, hosts = {}, ejected = 0,
      errors_limit = tonumber(errors_limit), gateway_limit = tonumber(gateway_limit),
      base = tonumber(base), max_percent = tonumber(max_percent),
      interval = tonumber(interval),
    }
    cluster.max_time = math.max(OUTLIER_MAX_EJECTION_MS, cluster.base)
    outlier_clusters[cluster_name] = cluster
    core.register_task(function() outlier_sweep(cluster) end)
  end
  local host = cluster.hosts[name]
  if host == nil then
    host = {
      errors = 0, gateway = 0, backoff = 0, listed = false,
      address = outlier_address(cluster, name),
    }
    cluster.hosts[name] = host
  end
  if status >= 500 and status <= 599 then
    if status == 502 or status == 503 or status == 504 then
      host.gateway = host.gateway + 1
      if host.gateway == cluster.gateway_limit then
        outlier_limit_reached(cluster, name, host, "gateway")
      end
    else
      host.gateway = 0
    end
    host.errors = host.errors + 1
    if host.errors == cluster.errors_limit then
      outlier_limit_reached(cluster, name, host, "errors")
    end
  else
    host.errors, host.gateway = 0, 0
  end
  outlier_listed(cluster, name, host)
end, 8)
