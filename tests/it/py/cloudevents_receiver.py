"""A webhook receiver that reads each request with the CloudEvents SDK (PyPI `cloudevents`,
its v1 HTTP binding): prints the port it listens on (127.0.0.1), then one JSON line per
request with the event's attributes and data as the SDK parsed them (or the SDK's error),
and the raw body and headers for the test to check the signature. Answers 200, or 400 when
the SDK refused the request."""

import base64
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from cloudevents.v1.http import from_http, is_binary, is_structured


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        seen = {"headers": headers, "body": base64.b64encode(body).decode()}
        try:
            event = from_http(headers, body)
            seen["mode"] = "binary" if is_binary(headers) else (
                "structured" if is_structured(headers) else "unknown")
            seen["attributes"] = {k: str(v) for k, v in event.get_attributes().items()}
            seen["data"] = event.get_data()
            status = 200
        except Exception as e:  # the SDK's refusal, reported to the test
            seen["error"] = f"{type(e).__name__}: {e}"
            status = 400
        print(json.dumps(seen), flush=True)
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
