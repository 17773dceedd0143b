"""Verifies messages with the Standard Webhooks library (PyPI `standardwebhooks`), as a
consumer of a broker destination would: reads one JSON object per line on stdin,
{"secret", "headers", "body"}, and prints one per line, {"id", "verified", "error"}."""
import json
import sys

from standardwebhooks import Webhook

for line in sys.stdin:
    message = json.loads(line)
    try:
        Webhook(message["secret"]).verify(message["body"], message["headers"])
        print(json.dumps({"id": message["headers"].get("webhook-id"), "verified": True, "error": None}))
    except Exception as e:  # the library's own verification error, said as it is
        print(json.dumps({"id": message["headers"].get("webhook-id"), "verified": False, "error": str(e)}))
