"""Sends one CloudEvent made by the CloudEvents SDK (PyPI `cloudevents`, its v1 HTTP
binding) to a URL: `cloudevents_sender.py URL structured|binary TYPE DATA_JSON`. Prints the
answer's status code."""

import http.client
import json
import sys
import urllib.parse

from cloudevents.v1.conversion import to_binary, to_structured
from cloudevents.v1.http import CloudEvent

url, mode, kind, data = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
event = CloudEvent({"type": kind, "source": "/tests/sender"}, data)
headers, body = (to_structured if mode == "structured" else to_binary)(event)
# Only the SDK's headers (binary mode has no content type: its data is JSON), as a plain
# HTTP client such as `requests` sends them.
target = urllib.parse.urlsplit(url)
connection = http.client.HTTPConnection(target.hostname, target.port)
connection.request("POST", target.path, body=body, headers=dict(headers))
print(connection.getresponse().status)
