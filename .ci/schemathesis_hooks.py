"""Schemathesis hooks for hookd: the rules its OpenAPI document states in words because JSON
Schema cannot hold them (a value checked against the server's state, one field compared with
another, a certificate that must parse).

Only schema-valid ("positive") cases are touched, and only to make them meet those rules, so
that the positive-data check asks the server to accept what the document promises it accepts.
Negative cases go out as generated. The server's address and tenant key come from
HOOKD_BASE and HOOKD_KEY, the client certificate pair from HOOKD_CERT_PEM and HOOKD_KEY_PEM
(files).
"""

import base64
import json
import os
import unicodedata
import urllib.request
from datetime import datetime, timedelta, timezone

import schemathesis
from schemathesis import GenerationMode

BASE = os.environ["HOOKD_BASE"]
KEY = os.environ.get("HOOKD_KEY", "")
CERT = {
    "certPem": open(os.environ["HOOKD_CERT_PEM"]).read(),
    "keyPem": open(os.environ["HOOKD_KEY_PEM"]).read(),
}

# A secret of each scheme, for a rotation whose generated secret does not fit the endpoint.
SECRETS = {
    "standard": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "ed25519": "whsk_" + "A" * 42 + "A=",
    "github": "a github secret",
}


def fits(scheme, secret):
    """Whether `secret` is one the server takes for `scheme` (`signing::check_secret`)."""
    if scheme == "github":
        return 8 <= len(secret) <= 256 and not any(unicodedata.category(c) == "Cc" for c in secret)
    prefix = "whsec_" if scheme == "standard" else "whsk_"
    if not secret.startswith(prefix):
        return False
    text = secret[len(prefix):]
    if scheme == "ed25519" and len(text) % 4:
        return False  # the seed's base64 is padded
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        return False
    # No spare bits set in the last character.
    if base64.b64encode(raw).decode().rstrip("=") != text.rstrip("="):
        return False
    return 24 <= len(raw) <= 64 if scheme == "standard" else len(raw) == 32


# Zones every IANA database holds; the server takes any IANA name, Hypothesis writes others.
ZONES = {"UTC", "Europe/Berlin", "Europe/Paris", "America/New_York", "Asia/Tokyo"}
CRONS = ["0 9 * * 1", "*/5 * * * *", "0 0 1 * *"]


def stored(path):
    """The tenant's resource at `path`, or None."""
    request = urllib.request.Request(BASE + path, headers={"Authorization": f"Bearer {KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.load(answer)
    except Exception:
        return None


def positive(case):
    return case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE


def endpoint_body(case, body):
    # The url must fit the destination (an HTTP URL, or a broker's address), and a broker
    # destination takes no Slack or Discord format, no client certificate and no OAuth2. The
    # body alone decides (not the stored endpoint, which other cases change meanwhile).
    destination = body.get("destination")
    url = body.get("url")
    kind = destination.get("type") if isinstance(destination, dict) else None
    schemes = {"http": ("http",), "redis": ("redis",), "nats": ("nats", "tls"), "amqp": ("amqp",), "kafka": ("kafka",)}
    if kind is None and url is not None:
        kind = next((k for k, prefixes in schemes.items() if str(url).startswith(prefixes)), "http")
    http_only = (
        body.get("format") in ("slack", "discord")
        or body.get("clientCertificate") is not None
        or isinstance(body.get("auth"), dict) and body["auth"].get("type") != "basic"
    )
    if kind is None and http_only:
        kind = "http"
    if kind is not None:
        if not isinstance(destination, dict):
            body["destination"] = {
                "http": {"type": "http"},
                "redis": {"type": "redis", "stream": "s"},
                "nats": {"type": "nats", "subject": "s"},
                "amqp": {"type": "amqp", "exchange": "x"},
                "kafka": {"type": "kafka", "topic": "t"},
            }[kind]
        if url is None or not str(url).startswith(schemes[kind]):
            body["url"] = {
                "http": "http://127.0.0.1:9/hook",
                "redis": "redis://127.0.0.1:9",
                "nats": "nats://127.0.0.1:9",
                "amqp": "amqp://127.0.0.1:9",
                "kafka": "kafka://127.0.0.1:9",
            }[kind]
    if kind not in (None, "http"):
        # What the endpoint has stored must go too (a PATCH keeps what it leaves out).
        if body.get("format") in (None, "slack", "discord"):
            body["format"] = "json"
        body["clientCertificate"] = None
        if isinstance(body.get("auth"), dict) and body["auth"].get("type") != "basic":
            body["auth"] = {"type": "basic", "username": "u", "password": "p"}
    # A test send waits up to the endpoint's timeout (an OAuth2 token endpoint that never
    # answers, say): keep it under the response-time limit of the checks.
    if case.method == "POST" and body.get("timeoutMs") is None or (body.get("timeoutMs") or 0) > 3000:
        body["timeoutMs"] = 3000
    # The certificate and key must parse and match: use a real pair.
    if body.get("clientCertificate") is not None:
        body["clientCertificate"] = dict(CERT)
    # No custom header may be the endpoint's own signature header.
    signature = body.get("signatureHeaderName")
    if signature and isinstance(body.get("headers"), dict):
        body["headers"].pop(signature.lower(), None)
    # A PATCH may change the scheme only to one the stored secret suits (any secret is a
    # github one).
    if case.method == "PATCH" and body.get("signatureScheme") not in (None, "github"):
        endpoint = stored(f"/v1/endpoints/{case.path_parameters.get('id')}")
        if endpoint is not None:
            body["signatureScheme"] = endpoint["signatureScheme"]
    return body


def rotate_body(case, body):
    # The new secret is in the endpoint's scheme's form.
    secret = body.get("secret")
    if secret is not None:
        endpoint = stored(f"/v1/endpoints/{case.path_parameters.get('id')}")
        scheme = endpoint["signatureScheme"] if endpoint else "standard"
        if not fits(scheme, secret):
            body["secret"] = SECRETS[scheme]
    return body


def recover_body(case, body):
    # `since` comes before `until` (which is now when it is left out).
    since, until = body.get("since"), body.get("until")
    end = instant(until) if until is not None else datetime.now(timezone.utc)
    if since is not None and instant(since) >= end:
        body["since"] = (end - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return body


def schedule_body(case, body):
    merged = dict(body)
    if case.method == "PATCH":
        schedule = stored(f"/v1/schedules/{case.path_parameters.get('id')}") or {}
        merged = {k: v for k, v in schedule.items() if v is not None}
        merged.update({k: v for k, v in body.items() if v is not None})
        # The rules between fields hold for the merged schedule: the target follows the
        # delivery method.
        if merged.get("deliveryMethod") == "email":
            body.pop("endpointId", None)
            if merged.get("recipients") is None:
                body["recipients"] = ["ops@example.com"]
        else:
            if body.get("recipients") is not None:
                body.pop("recipients")
            if merged.get("endpointId") is None:
                body["endpointId"] = schedule.get("endpointId") or "ep_1"
    # The zone is an IANA name; a cron expression parses and fires; a one-time run lies ahead.
    if body.get("timezone") is not None and body["timezone"] not in ZONES:
        body["timezone"] = "Europe/Berlin"
    kind = merged.get("scheduleType")
    if body.get("cronExpression") is not None or (kind == "custom_cron" and case.method == "PATCH"):
        body["cronExpression"] = CRONS[len(body.get("cronExpression") or "") % len(CRONS)]
    if body.get("scheduledAt") is not None or (kind == "one_time" and case.method == "PATCH"):
        ahead = datetime.now(timezone.utc) + timedelta(days=1)
        body["scheduledAt"] = ahead.strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "on_status_change" and case.method == "PATCH" and merged.get("triggerStatus") is None:
        body["triggerStatus"] = "shipped"
    return body


def instant(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))


def deliveries_query(case, query):
    # `since` comes before `until`.
    since, until = query.get("since"), query.get("until")
    if since and until and instant(since) >= instant(until):
        try:
            query["since"] = (instant(until) - timedelta(hours=1)).isoformat()
        except OverflowError:  # `until` at the start of year 1: nothing comes before it
            query.pop("since")
    return query


def preview_query(case, query):
    # The zone is an IANA name; the cron expression parses and fires.
    if query.get("timezone") not in ZONES:
        query["timezone"] = "Europe/Berlin"
    query["cronExpression"] = CRONS[len(query.get("cronExpression") or "") % len(CRONS)]
    return query


QUERIES = {
    ("GET", "/v1/endpoints/{id}/deliveries"): deliveries_query,
    ("GET", "/v1/schedules/preview"): preview_query,
}


BODIES = {
    ("POST", "/v1/endpoints"): endpoint_body,
    ("PATCH", "/v1/endpoints/{id}"): endpoint_body,
    ("POST", "/v1/endpoints/{id}/secret/rotate"): rotate_body,
    ("POST", "/v1/endpoints/{id}/recover"): recover_body,
    ("POST", "/v1/schedules"): schedule_body,
    ("PATCH", "/v1/schedules/{id}"): schedule_body,
}


@schemathesis.hook
def map_case(ctx, case):
    rule = BODIES.get((case.method.upper(), case.path))
    if rule is not None and positive(case) and isinstance(case.body, dict):
        case.body = rule(case, dict(case.body))
    rule = QUERIES.get((case.method.upper(), case.path))
    if rule is not None and positive(case) and isinstance(case.query, dict):
        case.query = rule(case, dict(case.query))
    return case
