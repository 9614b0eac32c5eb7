"""A registry token server (the Docker Registry v2 token protocol): it
checks HTTP basic credentials and hands out RS256 JWTs, signed with
`openssl` and carrying their certificate (x5c), that grant the scopes asked
for to the right user and nothing to anyone else. Logs each request.

Usage: token_server.py KEY.pem CERT.pem USER PASSWORD PORT
"""
import base64
import http.server
import json
import os
import subprocess
import sys
import time
import urllib.parse

KEY, CERT, USER, PASSWORD, PORT = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
DER = subprocess.run(["openssl", "x509", "-in", CERT, "-outform", "DER"], capture_output=True, check=True).stdout


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(header, claims):
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", KEY], input=signing_input.encode(), capture_output=True, check=True
    ).stdout
    return signing_input + "." + b64url(signature)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        auth = self.headers.get("Authorization", "")
        user = None
        if auth.startswith("Basic "):
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if (name, password) != (USER, PASSWORD):
                print(f"refused {name}", file=sys.stderr, flush=True)
                return self.reply(401, {"details": "incorrect username or password"})
            user = name
        access = []
        for scope in query.get("scope", []) if user else []:
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        print(f"token for {user or 'anonymous'} {query.get('scope', [])}", file=sys.stderr, flush=True)
        now = int(time.time())
        claims = {
            "iss": "test-token-issuer",
            "sub": user or "",
            "aud": query.get("service", [""])[0],
            "exp": now + 300,
            "nbf": now - 60,
            "iat": now - 60,
            "jti": os.urandom(8).hex(),
            "access": access,
        }
        token = sign({"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(DER).decode()]}, claims)
        self.reply(200, {"token": token, "access_token": token, "expires_in": 300})

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
