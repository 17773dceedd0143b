"""An OTLP/HTTP trace receiver on 127.0.0.1, for hookd's tests.

It decodes each POST /v1/traces body with the OpenTelemetry protocol's own messages (PyPI
`opentelemetry-proto`), prints the port it listens on, then one JSON line per span: its
resource's service.name and attributes, trace and span ids, parent, name, kind, attributes,
status and times. Anything that does not decode is answered 400 and printed as an error line.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attributes(pairs):
    return {kv.key: value_of(kv.value) for kv in pairs}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        request = ExportTraceServiceRequest()
        try:
            if self.path != "/v1/traces":
                raise DecodeError(f"unexpected path {self.path}")
            if self.headers.get("content-type") != "application/x-protobuf":
                raise DecodeError(f"content type {self.headers.get('content-type')}")
            request.ParseFromString(body)
        except DecodeError as e:
            print(json.dumps({"error": str(e)}), flush=True)
            self.send_response(400)
            self.end_headers()
            return
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    line = {
                        "resource": resource,
                        "scope": scope_spans.scope.name,
                        "traceId": span.trace_id.hex(),
                        "spanId": span.span_id.hex(),
                        "parentSpanId": span.parent_span_id.hex(),
                        "flags": span.flags,
                        "name": span.name,
                        "kind": span.kind,
                        "attributes": attributes(span.attributes),
                        "status": span.status.code,
                        "statusMessage": span.status.message,
                        "start": span.start_time_unix_nano,
                        "end": span.end_time_unix_nano,
                        "headers": {"api-key": self.headers.get("api-key")},
                    }
                    print(json.dumps(line), flush=True)
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
sys.stdout.flush()
server.serve_forever()
