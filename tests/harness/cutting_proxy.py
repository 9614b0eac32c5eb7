"""An HTTP proxy in front of a registry that breaks the first download of
every blob half-way (it sends the full Content-Length, half the bytes, then
closes), so tests can watch a client resume. Range requests pass through.
Logs one line per cut and per ranged request on stderr.

Usage: cutting_proxy.py UPSTREAM_URL PORT
"""
import http.server
import socket
import sys
import urllib.error
import urllib.request

UPSTREAM, PORT = sys.argv[1], int(sys.argv[2])
cut = set()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.forward()

    def do_HEAD(self):
        self.forward()

    def forward(self):
        req = urllib.request.Request(UPSTREAM + self.path, method=self.command)
        for key in ("Accept", "Authorization", "Range"):
            if self.headers.get(key):
                req.add_header(key, self.headers[key])
        try:
            resp = urllib.request.urlopen(req)
        except urllib.error.HTTPError as e:
            resp = e
        body = resp.read() if self.command == "GET" else b""
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in ("transfer-encoding", "connection"):
                self.send_header(key, value)
        self.end_headers()
        if self.headers.get("Range"):
            print(f"range {self.headers['Range']} {self.path} -> {resp.status}", file=sys.stderr, flush=True)
        blob = self.command == "GET" and "/blobs/" in self.path and resp.status in (200, 206)
        if blob and self.path not in cut and len(body) > 64:
            cut.add(self.path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            print(f"cut {self.path} after {len(body) // 2} of {len(body)}", file=sys.stderr, flush=True)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
