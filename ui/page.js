// The dashboard's kit, shared by its pages: the API client with the signed-in key, building
// elements, tables, paging, routes, notices and actions that re-render the page.

export const TOKEN = "hookd.token";
export const main = document.getElementById("main");
const errorBox = document.getElementById("error");
// Who is signed in: the answer of GET /v1/me ({tenantId, role, via}), or null.
export const session = { me: null };
let pending = []; // notices to show above the next page rendered (a secret shown once)
let rerender = async () => {}; // the router's render, run after an action

// ---- the API -------------------------------------------------------------------------------

export class ApiError extends Error {}

export async function api(method, path, body) {
  const headers = { authorization: `Bearer ${sessionStorage.getItem(TOKEN) || ""}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    if (res.status === 401) {
      sessionStorage.removeItem(TOKEN);
      session.me = null;
      throw new ApiError("That key was not accepted: it is unknown, deleted or mistyped. Tenant keys (hk_…) come from whoever runs your hookd; a portal link you were given signs you in by itself.");
    }
    const message = data && data.error ? data.error.message : `${res.status} ${res.statusText}`;
    throw new ApiError(message);
  }
  return data;
}

// ---- building the page ---------------------------------------------------------------------

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const isAdmin = () => session.me && session.me.role === "admin";
export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
export const whenIn = (iso, zone) => (iso ? new Date(iso).toLocaleString(undefined, { timeZone: zone }) : "—");
export const status = (s) => h("span", { class: s }, s);

// Words for the codes the API answers with.
const REASONS = { consecutive_failures: "after failing again and again", gone: "the receiver answered 410 Gone", manual: "by hand" };
export const disabled = (reason) => h("span", { class: "disabled" }, `disabled ${REASONS[reason || "manual"] || reason}`);
export const KINDS = { custom_cron: "Custom (cron)", one_time: "One time", weekly_digest: "Weekly digest", on_status_change: "On status change" };
export const ERRORS = { timeout: "no answer in time", connect: "could not connect", dns: "the name did not resolve", tls: "the TLS handshake failed",
  http_status: "answered with a status that is not 2xx", body_too_large: "answered a body too large", incomplete: "the answer broke off", blocked_target: "the address is not allowed", auth: "could not authenticate" };
export const scheduleKind = (k) => KINDS[k] || k;
// An id as a link to its page; a click on it does not also click the row it sits in.
export const link = (text, path) => h("a", { href: `#/${path}`, onclick: (ev) => ev.stopPropagation() }, text);

export function showError(e) {
  errorBox.textContent = e instanceof Error ? e.message : String(e);
  errorBox.hidden = false;
}

export function clearError() {
  errorBox.hidden = true;
  errorBox.textContent = "";
}

// Runs an action; shows its error instead of swallowing it, then re-renders the page.
export function action(fn) {
  return async (event) => {
    if (event) event.preventDefault();
    clearError();
    try {
      const keep = await fn(event);
      if (keep !== "keep") await rerender();
    } catch (e) {
      showError(e);
    }
  };
}

export function table(headers, rows, onRow) {
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((r) => {
      const tr = h("tr", onRow ? { class: "clickable", onclick: () => onRow(r.item) } : {}, r.cells.map((c) => h("td", {}, c)));
      if (r.id) tr.dataset.id = r.id;
      return tr;
    })));
}

export function pager(page, go) {
  if (page.totalPages <= 1) return null;
  return h("div", { class: "pager" },
    h("button", { class: "plain", type: "button", disabled: page.number === 0, onclick: () => go(page.number - 1) }, "Newer"),
    `page ${page.number + 1} of ${page.totalPages} (${page.totalElements})`,
    h("button", { class: "plain", type: "button", disabled: page.number + 1 >= page.totalPages, onclick: () => go(page.number + 1) }, "Older"));
}

// The current route: path parts and query parameters of the hash.
export function route() {
  const [path, query] = location.hash.replace(/^#/, "").split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query || "") };
}

export function go(path, params) {
  const q = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined)).toString() : "";
  location.hash = `#/${path}${q ? `?${q}` : ""}`;
}


export function showNotice(...text) {
  main.prepend(h("div", { class: "notice", role: "status" }, ...text));
}

// A notice for the page about to be rendered (after a create: the list shows the new row).
export function noticeNext(...text) {
  pending.push(h("div", { class: "notice", role: "status" }, ...text));
}

// The notices waiting for the page about to be shown; taken once.
export function takeNotices() {
  const out = pending;
  pending = [];
  return out;
}

// What an action runs after it succeeds: the router's render.
export function afterActions(render) {
  rerender = render;
}
