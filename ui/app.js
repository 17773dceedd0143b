// hookd's dashboard: a client of the same /v1 API, with the key (or portal token) the user
// signs in with, kept for this browser tab only (sessionStorage). Every page has its own URL
// (hash routes), so links and the back button work. Plain DOM, no dependencies.

import { deliveriesChart, latencyChart, rateChart, rateText, sparkline } from "./charts.js";
import {
  ApiError, ERRORS, TOKEN, action, afterActions, api, clearError, disabled, go, h, isAdmin, link, main,
  noticeNext, pager, route, session, showError, showNotice, status, table, takeNotices, when,
} from "./page.js";
import { schedulePage, schedulesPage } from "./schedules.js";

let renders = 0; // the latest render; an older one that finishes later changes nothing

// ---- pages ---------------------------------------------------------------------------------

function signIn() {
  const input = h("input", { id: "token", type: "password", autocomplete: "off", placeholder: "hk_…" });
  return h("div", { class: "signin" },
    h("h1", {}, "Sign in"),
    h("p", {}, "Paste a tenant API key (hk_…). Keys are made by whoever runs your hookd, one or more per tenant; a portal link you were given signs you in by itself. The key stays in this browser tab only."),
    h("form", { onsubmit: action(async () => {
      sessionStorage.setItem(TOKEN, input.value.trim());
      session.me = null;
      go("endpoints");
      return "keep";
    }) }, input, h("button", { id: "signin", type: "submit" }, "Sign in")));
}

// The list reads every endpoint's last 24 hours in one request (not one per endpoint).
async function endpointsPage() {
  const [page, series] = await Promise.all([api("GET", `/v1/endpoints?size=100`), api("GET", "/v1/stats/series?window=24h")]);
  const recent = new Map(series.endpoints.map((s) => [s.endpointId, s.points]));
  const rows = page.content.map((e) => {
    const state = e.isActive ? status("active") : disabled(e.disabledReason);
    const points = recent.get(e.id) || [];
    return { id: e.id, item: e, cells: [link(e.name, `endpoints/${e.id}`), e.url, state, sparkline(points, series.stepSeconds), rateText(points)] };
  });
  const create = isAdmin() ? createEndpointForm() : null;
  return [
    h("h1", {}, "Endpoints"),
    rows.length
      ? table(["Name", "URL", "State", "Last 24 hours", "Success rate (24 h)"], rows, (e) => go(`endpoints/${e.id}`))
      : h("p", { class: "empty" }, isAdmin()
        ? "No endpoints yet. Add one below: hookd delivers the events it subscribes to, signed and retried."
        : "No endpoints yet. An admin of this workspace can add one."),
    create,
  ];
}

function createEndpointForm() {
  const name = h("input", { name: "name", placeholder: "name", required: true });
  const url = h("input", { name: "url", placeholder: "https://example.com/webhooks", size: 40, required: true });
  const events = h("input", { name: "events", placeholder: "events: order.*, *", value: "*" });
  return [h("h2", {}, "Add an endpoint"), h("form", { class: "inline", onsubmit: action(async () => {
    const created = await api("POST", "/v1/endpoints", {
      name: name.value, url: url.value,
      events: events.value.split(",").map((x) => x.trim()).filter(Boolean),
    });
    noticeNext(`Created ${created.name}. Its signing secret (shown once): `, h("code", { class: "copy" }, created.secret));
  }) }, name, url, events, h("button", { type: "submit" }, "Add"))];
}

async function endpointPage(id, params) {
  const windowName = params.get("window") === "7d" ? "7d" : "24h";
  const [e, s, series] = await Promise.all([api("GET", `/v1/endpoints/${id}`), api("GET", `/v1/endpoints/${id}/stats`),
    api("GET", `/v1/endpoints/${id}/stats/series?window=${windowName}`)]);
  const filter = params.get("status") || "";
  // What paging and picking keep: the filters (event type, a window of creation times) too.
  const kept = { status: filter, window: windowName === "7d" ? "7d" : "",
    eventType: params.get("eventType") || "", since: params.get("since") || "", until: params.get("until") || "" };
  const narrowed = new URLSearchParams(Object.entries({ status: filter, eventType: kept.eventType, since: kept.since, until: kept.until })
    .filter(([, v]) => v));
  const number = Number(params.get("page") || 0);
  const log = await api("GET", `/v1/endpoints/${id}/deliveries?page=${number}&size=20${narrowed.size ? `&${narrowed}` : ""}`);
  const selected = params.get("delivery");
  const detail = selected ? await deliveryPanel(selected) : null;
  const stat = (label, value) => h("div", { class: "stat" }, label, h("b", {}, value));
  const actions = isAdmin() ? h("div", { class: "actions" },
    h("button", { id: "test-send", type: "button", onclick: action(async () => {
      const r = await api("POST", `/v1/endpoints/${id}/test`);
      const said = r.delivered ? `delivered (${r.responseCode}, ${r.latencyMs} ms)` : `failed: ${r.error || r.responseCode}`;
      showNotice(`Test event ${said}`);
      return "keep";
    }) }, "Send test event"),
    e.isActive
      ? h("button", { id: "pause", class: "plain", type: "button", onclick: action(() => api("PATCH", `/v1/endpoints/${id}`, { isActive: false })) }, "Pause")
      : h("button", { id: "enable", type: "button", onclick: action(() => api("POST", `/v1/endpoints/${id}/enable`)) }, "Resume"),
    h("button", { id: "rotate", class: "plain", type: "button", onclick: action(async () => {
      if (!confirm("Rotate the signing secret? The old one keeps signing during the grace period.")) return "keep";
      const r = await api("POST", `/v1/endpoints/${id}/secret/rotate`);
      showNotice("New signing secret (shown once): ", h("code", { class: "copy" }, r.secret));
      return "keep";
    }) }, "Rotate secret"),
    h("button", { id: "delete", class: "plain danger", type: "button", onclick: action(async () => {
      if (!confirm(`Delete ${e.name} with its delivery log? Pending deliveries to it are dropped. This cannot be undone.`)) return "keep";
      await api("DELETE", `/v1/endpoints/${id}`);
      noticeNext(`Deleted ${e.name}.`);
      go("endpoints");
      return "keep";
    }) }, "Delete"),
    recoverForm(id)) : null;
  const filterSelect = h("select", { id: "status-filter", onchange: (ev) => go(`endpoints/${id}`, { ...kept, status: ev.target.value }) },
    ["", "pending", "succeeded", "failed"].map((v) => h("option", { value: v, selected: v === filter }, v || "all")));
  return [
    h("h1", {}, e.name, " ", e.isActive ? status("active") : disabled(e.disabledReason)),
    h("p", {}, e.url, destinationText(e.destination), " · events ", e.events.join(", ")),
    h("p", { id: "guards" }, [
      `signed: ${e.signatureScheme}`,
      e.authConfigured ? "auth configured (write-only)" : null,
      e.clientCertificateConfigured ? "client certificate configured" : null,
    ].filter(Boolean).join(" · ")),
    h("div", { class: "stats" },
      stat("Success rate", s.successRate === null ? "—" : `${s.successRate.toFixed(1)}%`),
      stat("Succeeded", s.succeeded), stat("Failed", s.failed), stat("Pending", s.pending),
      stat("Consecutive failures", s.consecutiveFailures),
      stat("Last delivery", s.lastDelivery ? `${s.lastDelivery.status} ${when(s.lastDelivery.at)}` : "never")),
    charts(id, series, kept),
    actions,
    isAdmin() ? editEndpointForm(e) : null,
    h("h2", {}, "Deliveries"),
    h("div", { class: "actions" }, "Status ", filterSelect, logFilters(id, kept)),
    log.content.length
      ? table(["Delivery", "Event", "Type", "Status", "Attempts", "Next attempt", "Created"],
        log.content.map((d) => ({ id: d.id, item: d, cells: [d.id, link(d.eventId, `events/${d.eventId}`), d.eventType, status(d.status), d.attemptCount, when(d.nextAttemptAt), when(d.createdAt)] })),
        (d) => go(`endpoints/${id}`, { ...kept, page: number || "", delivery: d.id }))
      : h("p", { class: "empty" }, narrowed.size ? "No deliveries match these filters." : "No deliveries yet: publish an event this endpoint subscribes to."),
    pager(log, (n) => go(`endpoints/${id}`, { ...kept, page: n })),
    detail,
  ];
}

// The delivery log narrowed to one event type and a window of creation times (your zone).
function logFilters(id, kept) {
  const local = (iso) => {
    if (!iso) return "";
    const d = new Date(iso);
    return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  };
  const type = h("input", { id: "log-type", value: kept.eventType, placeholder: "event type", size: 16 });
  const since = h("input", { id: "log-since", type: "datetime-local", value: local(kept.since), title: "created from" });
  const until = h("input", { id: "log-until", type: "datetime-local", value: local(kept.until), title: "created before" });
  const iso = (input) => (input.value ? new Date(input.value).toISOString() : "");
  return h("form", { class: "inline", id: "log-filters", onsubmit: (ev) => {
    ev.preventDefault();
    go(`endpoints/${id}`, { ...kept, eventType: type.value.trim(), since: iso(since), until: iso(until) });
  } }, "Type ", type, " from ", since, " to ", until, h("button", { id: "apply-filters", class: "plain", type: "submit" }, "Filter"),
  kept.eventType || kept.since || kept.until
    ? h("button", { id: "clear-filters", class: "plain", type: "button", onclick: () => go(`endpoints/${id}`, { ...kept, eventType: "", since: "", until: "" }) }, "Clear")
    : null);
}

// Deliveries, success rate and latency over the last day (per hour) or week (per six hours).
function charts(id, series, kept) {
  const words = series.window === "7d" ? "over the last 7 days" : "over the last 24 hours";
  const choose = (value, text) => h("button", {
    id: `window-${value}`, type: "button", class: series.window === value ? "" : "plain",
    onclick: () => go(`endpoints/${id}`, { ...kept, window: value === "24h" ? "" : value }),
  }, text);
  const figure = (title, chart) => h("figure", {}, h("figcaption", {}, title), chart);
  return h("section", { id: "charts" },
    h("div", { class: "actions" }, h("h2", {}, `Attempts ${words}`), choose("24h", "24 hours"), choose("7d", "7 days")),
    h("div", { class: "charts" },
      figure([series.window === "7d" ? "Attempts per six hours: " : "Attempts per hour: ", h("span", { class: "key ok" }, "succeeded"), " and ", h("span", { class: "key bad" }, "failed")], deliveriesChart(series.points, series.stepSeconds, words)),
      figure("Success rate", rateChart(series.points, series.stepSeconds, words)),
      figure(["Latency: ", h("span", { class: "key p50" }, "p50"), " and ", h("span", { class: "key p99" }, "p99")], latencyChart(series.points, series.stepSeconds, words))));
}

// Where a broker endpoint's messages go, after its address ("" for an HTTP endpoint).
function destinationText(d) {
  if (!d || d.type === "http") return "";
  if (d.type === "redis") return ` → Redis stream ${d.stream}`;
  if (d.type === "nats") return ` → NATS subject ${d.subject}`;
  if (d.type === "kafka") return ` → Kafka topic ${d.topic}, keyed by ${d.key === "eventId" ? "the event id" : d.key}`;
  const key = d.routingKey ? `routing key ${d.routingKey}` : "the event type as routing key";
  return ` → AMQP exchange ${d.exchange || "(default)"}, ${key}`;
}

// The settings an operator changes most, in one form; empty means "none" where a setting may
// be absent (rate limit).
function editEndpointForm(e) {
  const field = (name, label, value, attrs) => {
    const input = h("input", { name, value: value ?? "", ...attrs });
    return [h("label", { for: `edit-${name}` }, label), Object.assign(input, { id: `edit-${name}` })];
  };
  const [urlLabel, url] = field("url", "URL", e.url, { size: 40, required: true });
  const [eventsLabel, events] = field("events", "Events (comma-separated)", e.events.join(", "), { size: 30 });
  const [retryLabel, retry] = field("retrySchedule", "Retry delays", e.retrySchedule.join(", "), { size: 30, placeholder: "1m, 5m, 30m, 2h, 24h" });
  const [rateLabel, rate] = field("rateLimit", "Rate limit (per second, empty: none)", e.rateLimit, { type: "number", min: 1 });
  const [timeoutLabel, timeout] = field("timeoutMs", "Timeout (ms)", e.timeoutMs, { type: "number", min: 100 });
  const [disableLabel, disable] = field("disableAfter", "Disable after failures (0: never)", e.disableAfter, { type: "number", min: 0 });
  const list = (text) => text.split(",").map((x) => x.trim()).filter(Boolean);
  // Headers are sent only when changed: a value hookd could not open reads back as null.
  const written = Object.entries(e.headers || {}).map(([k, v]) => `${k}: ${v ?? ""}`).join("\n");
  const headers = h("textarea", { id: "edit-headers", rows: 3, cols: 40, placeholder: "X-Source: hookd (one per line)" }, written);
  const auth = endpointAuthFields(e.authConfigured);
  return h("details", { id: "edit" }, h("summary", {}, "Edit settings"),
    h("form", { class: "grid", onsubmit: action(async () => {
      const body = {
        url: url.value.trim(),
        events: list(events.value),
        retrySchedule: list(retry.value),
        rateLimit: rate.value === "" ? null : Number(rate.value),
        timeoutMs: Number(timeout.value),
        disableAfter: Number(disable.value),
      };
      if (headers.value.trim() !== written.trim()) body.headers = headerLines(headers.value);
      const credentials = auth.value();
      if (credentials !== undefined) body.auth = credentials;
      await api("PATCH", `/v1/endpoints/${e.id}`, body);
      noticeNext("Saved.");
    }) }, urlLabel, url, eventsLabel, events, retryLabel, retry, rateLabel, rate, timeoutLabel, timeout,
      disableLabel, disable, h("label", { for: "edit-headers" }, "Headers"), headers,
      h("label", { for: "edit-auth" }, "Auth (write-only)"), auth.fields,
      h("button", { id: "save", type: "submit" }, "Save")));
}

// "Name: value" lines as a headers object; a line without a colon is refused here, by name.
function headerLines(text) {
  const out = {};
  for (const line of text.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const at = line.indexOf(":");
    if (at < 1) throw new ApiError(`Header line "${line}" needs the form Name: value`);
    out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

// How hookd authenticates to the endpoint. Credentials are never read back, so what is set
// is kept unless another choice is made; `value()` is undefined for "keep".
function endpointAuthFields(configured) {
  const choices = [...(configured ? [["keep", "keep what is set"]] : []), ["none", "none"], ["basic", "HTTP Basic"], ["oauth2", "OAuth 2 client credentials"]];
  const kind = h("select", { id: "edit-auth" }, choices.map(([v, label]) => h("option", { value: v }, label)));
  const input = (name, placeholder, type) => h("input", { id: `edit-auth-${name}`, placeholder, type: type || "text", size: 24 });
  const basic = { username: input("username", "username"), password: input("password", "password", "password") };
  const oauth2 = { tokenUrl: input("tokenUrl", "token URL"), clientId: input("clientId", "client id"),
    clientSecret: input("clientSecret", "client secret", "password"), scope: input("scope", "scope (optional)") };
  const shown = () => {
    for (const el of Object.values(basic)) el.hidden = kind.value !== "basic";
    for (const el of Object.values(oauth2)) el.hidden = kind.value !== "oauth2";
  };
  kind.addEventListener("change", shown);
  shown();
  const value = () => {
    if (kind.value === "keep") return undefined;
    if (kind.value === "none") return configured ? null : undefined;
    const fields = kind.value === "basic" ? basic : oauth2;
    const out = { type: kind.value };
    for (const [k, el] of Object.entries(fields)) if (el.value.trim()) out[k] = el.value.trim();
    return out;
  };
  return { fields: h("div", { class: "auth" }, kind, Object.values(basic), Object.values(oauth2)), value };
}

function recoverForm(id) {
  const since = h("input", { type: "datetime-local", required: true, title: "since" });
  const until = h("input", { type: "datetime-local", title: "until (empty: now)" });
  return h("form", { class: "inline", onsubmit: action(async () => {
    const body = { since: new Date(since.value).toISOString() };
    if (until.value) body.until = new Date(until.value).toISOString();
    const r = await api("POST", `/v1/endpoints/${id}/recover`, body);
    showNotice(`Re-queued ${r.recovered} deliveries`);
    return "keep";
  }) }, "Recover from", since, "to", until, h("button", { class: "plain", type: "submit" }, "Recover"));
}


async function deliveryPanel(id) {
  const d = await api("GET", `/v1/deliveries/${id}`);
  return h("section", { id: "delivery" },
    h("h2", {}, `Delivery ${d.id} `, status(d.status)),
    isAdmin() ? h("div", { class: "actions" }, h("button", { id: "retry", type: "button", onclick: action(() => api("POST", `/v1/deliveries/${id}/retry`)) }, "Retry now")) : null,
    d.attempts.length
      ? table(["#", "At", "Response", "Latency", "Error", "Response body", "Trace"],
        d.attempts.map((a) => ({ cells: [a.number, when(a.at), a.responseCode ?? "—", a.latencyMs === null ? "—" : `${a.latencyMs} ms`,
          a.error ? h("span", { title: a.error }, a.errorMessage || ERRORS[a.error] || a.error) : "—", a.responseBody ? h("pre", {}, a.responseBody) : "—",
          a.traceId ? h("code", { class: "trace", title: "the event's trace id (W3C traceparent)" }, a.traceId) : "—"] })))
      : h("p", { class: "empty" }, "Not attempted yet."),
    requestView(d.request));
}

// What each attempt sends, with the endpoint's settings now; per-attempt and secret values are
// named in parentheses. A JSON body is shown indented.
function requestView(r) {
  let body = r.body;
  try { body = JSON.stringify(JSON.parse(r.body), null, 2); } catch { /* not JSON: as sent */ }
  return h("details", { id: "request" }, h("summary", {}, "Request sent"),
    h("p", {}, h("code", {}, `${r.method} ${r.url}`)),
    h("table", { class: "headers" }, h("tbody", {}, r.headers.map(([name, value]) =>
      h("tr", {}, h("th", {}, name), h("td", { class: value.startsWith("(") ? "muted" : "" }, value))))),
    h("pre", { id: "request-body" }, body));
}

async function eventsPage(params) {
  const type = params.get("type") || "";
  const number = Number(params.get("page") || 0);
  const page = await api("GET", `/v1/events?page=${number}&size=20${type ? `&type=${encodeURIComponent(type)}` : ""}`);
  const input = h("input", { id: "type-filter", value: type, placeholder: "event type" });
  const find = h("input", { id: "event-id", placeholder: "evt_…" });
  return [
    h("h1", {}, "Events"),
    h("div", { class: "actions" },
      h("form", { class: "inline", onsubmit: (ev) => { ev.preventDefault(); go("events", { type: input.value.trim() }); } }, input, h("button", { class: "plain", type: "submit" }, "Filter")),
      h("form", { class: "inline", onsubmit: (ev) => { ev.preventDefault(); if (find.value.trim()) go(`events/${find.value.trim()}`); } }, find, h("button", { id: "find-event", class: "plain", type: "submit" }, "Open event"))),
    page.content.length
      ? table(["Event", "Type", "Deliveries", "Published"], page.content.map((e) => ({ id: e.id, item: e, cells: [link(e.id, `events/${e.id}`), e.type, e.deliveries, when(e.createdAt)] })), (e) => go(`events/${e.id}`))
      : h("p", { class: "empty" }, type ? `No ${type} events.` : "No events yet: publish one with POST /v1/events."),
    pager(page, (n) => go("events", { type, page: n })),
  ];
}

async function eventPage(id) {
  const e = await api("GET", `/v1/events/${id}`);
  return [
    h("h1", {}, `${e.type} `, h("small", {}, e.id)),
    h("p", {}, `Published ${when(e.createdAt)}`),
    h("pre", {}, JSON.stringify(e.data, null, 2)),
    h("h2", {}, "Deliveries"),
    e.deliveries.length
      ? table(["Delivery", "Endpoint", "Status", "Attempts", "Next attempt"], e.deliveries.map((d) => ({ id: d.id, item: d, cells: [link(d.id, `endpoints/${d.endpointId}?delivery=${d.id}`), link(d.endpointId, `endpoints/${d.endpointId}`), status(d.status), d.attemptCount, when(d.nextAttemptAt)] })),
        (d) => go(`endpoints/${d.endpointId}`, { delivery: d.id }))
      : h("p", { class: "empty" }, "No endpoint subscribes to this event type."),
  ];
}

function createIncomingForm() {
  const name = h("input", { id: "incoming-name", placeholder: "name", required: true });
  const eventType = h("input", { id: "incoming-type", placeholder: "publish as event type (empty: store only)" , size: 32 });
  const scheme = h("select", { id: "incoming-scheme", title: "signature check" },
    h("option", { value: "" }, "no signature check"),
    h("option", { value: "standard" }, "Standard Webhooks signature"),
    h("option", { value: "github" }, "GitHub signature (X-Hub-Signature-256)"));
  const secret = h("input", { id: "incoming-secret", type: "password", autocomplete: "off", placeholder: "the sender's signing secret", size: 28 });
  return [h("h2", {}, "Add an incoming webhook"), h("form", { class: "inline", onsubmit: action(async () => {
    const type = eventType.value.trim();
    const body = { name: name.value, action: type ? { type: "publish", eventType: type } : { type: "store" } };
    if (scheme.value) body.verify = { scheme: scheme.value, secret: secret.value };
    const created = await api("POST", "/v1/incoming", body);
    noticeNext("Give the sender this URL (shown once): ", h("code", { class: "copy", id: "incoming-url" }, `${location.origin}${created.url}`));
  }) }, name, eventType, scheme, secret, h("button", { id: "add-incoming", type: "submit" }, "Add"))];
}

async function incomingPage() {
  const page = await api("GET", "/v1/incoming?size=100");
  return [
    h("h1", {}, "Incoming webhooks"),
    page.content.length
      ? table(["Name", "Action", "Signed", "Created"], page.content.map((x) => ({ id: x.id, item: x, cells: [x.name,
        x.action.type === "publish" ? `publish as ${x.action.eventType}` : "store", x.verify ? x.verify.scheme : "no", when(x.createdAt)] })), (x) => go(`incoming/${x.id}`))
      : h("p", { class: "empty" }, "No incoming webhooks yet: add one to receive webhooks from another service; its URL is shown once."),
    isAdmin() ? createIncomingForm() : null,
  ];
}

async function incomingRequestsPage(id, params) {
  const number = Number(params.get("page") || 0);
  const page = await api("GET", `/v1/incoming/${id}/requests?page=${number}&size=20`);
  return [
    h("h1", {}, `Incoming ${id}`),
    isAdmin() ? h("div", { class: "actions" }, h("button", { id: "delete-incoming", class: "plain danger", type: "button", onclick: action(async () => {
      if (!confirm("Delete this incoming webhook? Calls to its URL are refused from now on.")) return "keep";
      await api("DELETE", `/v1/incoming/${id}`);
      noticeNext(`Deleted incoming webhook ${id}.`);
      go("incoming");
      return "keep";
    }) }, "Delete")) : null,
    h("p", {}, "Calls go to ", h("code", { class: "copy" }, `${location.origin}/hooks/in/<token>`), " (the token was shown once, at creation)."),
    page.content.length
      ? table(["Received", "Status", "Content type", "Error", "Event", "Body"], page.content.map((r) => ({ cells: [when(r.receivedAt), status(r.status),
        r.contentType || "—", r.error || "—", r.eventId ? link(r.eventId, `events/${r.eventId}`) : "—", r.body ? h("pre", {}, r.body) : "—"] })))
      : h("p", { class: "empty" }, "No calls received yet."),
    pager(page, (n) => go(`incoming/${id}`, { page: n })),
  ];
}

async function integrationsPage() {
  const { integrations } = await api("GET", "/v1/integrations");
  return [
    h("h1", {}, "Integrations"),
    table(["Integration", "State", "URL", "Events", ""], Object.entries(integrations).map(([kind, i]) => ({ id: kind, cells: [kind,
      i.connected ? status("active") : "not connected", i.url || "—", i.events ? i.events.join(", ") : "—",
      isAdmin() ? integrationActions(kind, i) : ""] }))),
  ];
}

const INTEGRATION_URLS = { slack: "Slack webhook URL", discord: "Discord webhook URL", webhook: "Webhook URL" };

function integrationActions(kind, i) {
  if (!i.connected) {
    const url = h("input", { id: `url-${kind}`, placeholder: INTEGRATION_URLS[kind] || "URL", size: 30, required: true });
    return h("form", { class: "inline", onsubmit: action(() => api("PUT", `/v1/integrations/${kind}`, { url: url.value })) }, url, h("button", { id: `connect-${kind}`, type: "submit" }, "Connect"));
  }
  return h("div", { class: "actions" },
    h("button", { id: `test-${kind}`, class: "plain", type: "button", onclick: action(async () => {
      const r = await api("POST", `/v1/integrations/${kind}/test`);
      showNotice(r.message);
      return "keep";
    }) }, "Test"),
    h("button", { id: `disconnect-${kind}`, class: "plain", type: "button", onclick: action(() => api("DELETE", `/v1/integrations/${kind}`)) }, "Disconnect"));
}

// ---- the router ----------------------------------------------------------------------------

async function render() {
  const mine = ++renders;
  const hash = location.hash;
  if (hash.startsWith("#token=")) {
    // A portal link: sign in with its token, and keep it out of the address bar and history.
    sessionStorage.setItem(TOKEN, decodeURIComponent(hash.slice("#token=".length)));
    session.me = null;
    history.replaceState(null, "", "#/endpoints");
  }
  const { parts, params } = route();
  const signedIn = !!sessionStorage.getItem(TOKEN);
  document.getElementById("signout").hidden = !signedIn;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.getAttribute("href") === `#/${parts[0] || "endpoints"}`);
  if (!signedIn || parts[0] === "signin") {
    main.replaceChildren(signIn());
    return;
  }
  try {
    if (!session.me) session.me = await api("GET", "/v1/me");
    if (session.me.operator) {
      document.getElementById("who").textContent = "operator";
      main.replaceChildren(
        h("h1", {}, "This is the operator token"),
        h("p", {}, "The operator token manages tenants and their keys through the API; the dashboard shows one tenant's endpoints, events and schedules. Create a key for a tenant (POST /v1/tenants/{id}/keys with role admin) and sign in with it."),
        h("button", { type: "button", onclick: () => document.getElementById("signout").click() }, "Sign in with a tenant key"));
      document.body.dataset.page = "operator";
      return;
    }
    const daily = session.me.limits && session.me.limits.eventsPerDay !== null && session.me.limits.eventsPerDay !== undefined
      ? ` · events today ${session.me.usage.eventsToday} of ${session.me.limits.eventsPerDay}` : "";
    document.getElementById("who").textContent =
      `${session.me.tenantName || session.me.tenantId} · ${session.me.role}${session.me.via === "portal" ? " (portal link)" : ""}${daily}`;
    const [page, id] = parts;
    let content;
    if (page === "events" && id) content = await eventPage(id);
    else if (page === "events") content = await eventsPage(params);
    else if (page === "incoming" && id) content = await incomingRequestsPage(id, params);
    else if (page === "incoming") content = await incomingPage();
    else if (page === "schedules" && id) content = await schedulePage(id, params);
    else if (page === "schedules") content = await schedulesPage();
    else if (page === "integrations") content = await integrationsPage();
    else if (page === "endpoints" && id) content = await endpointPage(id, params);
    else content = await endpointsPage();
    if (mine !== renders) return;
    main.replaceChildren(...[content].flat(Infinity).filter(Boolean));
    main.prepend(...takeNotices());
    document.body.dataset.page = page || "endpoints";
  } catch (e) {
    if (mine !== renders) return;
    if (!sessionStorage.getItem(TOKEN)) {
      document.getElementById("signout").hidden = true;
      document.getElementById("who").textContent = "";
      main.replaceChildren(signIn());
    } else {
      // Never the previous page's body under this page's error (a page the plan does not
      // include, a deleted resource).
      main.replaceChildren(h("h1", {}, "Not available"), h("p", { class: "empty", id: "unavailable" }, e.message));
      document.body.dataset.page = "unavailable";
      return;
    }
    showError(e);
  }
}

document.getElementById("signout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN);
  session.me = null;
  go("signin");
});
afterActions(render);
window.addEventListener("hashchange", () => { clearError(); render(); });
render();
