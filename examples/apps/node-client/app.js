// A client nobody wrote for the mesh: Node's own `http` module, which ignores HTTP_PROXY, calls
// service1 by name. It reaches it only where the name resolves and the connection is captured:
// in a cluster (DNS + iptables) or in `sailplan sandbox --isolation netns` (hosts file + iptables).
//
// GET /healthz -> 200 "ok". Any other GET -> what service1 answered to the same path:
// "service1 <status> <its server header> <its body>". Listens on $HOST:$PORT.
"use strict";
const http = require("http");

const target = new URL(process.env.SERVICE1_URL || "http://service1:8088");
const host = process.env.HOST || "127.0.0.1";
const port = Number(process.env.PORT || 8090);

function call(path, headers, done) {
  const request = http.get(
    { hostname: target.hostname, port: target.port || 80, path, headers, timeout: 5000 },
    (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => (body += chunk));
      response.on("end", () => done(null, response.statusCode, response.headers.server, body));
    },
  );
  request.on("timeout", () => request.destroy(new Error("timed out")));
  request.on("error", (error) => done(error));
}

http
  .createServer((req, res) => {
    if (req.url === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
      return;
    }
    // As an app in a mesh should: the headers that routing and tracing need go along.
    const headers = {};
    for (const name of ["end-user", "x-request-id"]) {
      if (req.headers[name]) headers[name] = req.headers[name];
    }
    call(req.url, headers, (error, status, server, body) => {
      res.writeHead(error ? 502 : 200, { "content-type": "text/plain" });
      res.end(
        error ? `service1 unreachable: ${error.code || error.message}\n`
          : `service1 ${status} ${server || "-"} ${body}\n`,
      );
    });
  })
  .listen(port, host);
