// The schedules' pages: the list, adding one, one schedule with its runs, and editing it with
// its next runs previewed as they are typed.

import { KINDS, action, api, go, h, isAdmin, link, noticeNext, pager, scheduleKind, status, table, when, whenIn } from "./page.js";

export async function schedulesPage() {
  const page = await api("GET", "/v1/schedules?size=100");
  return [
    h("h1", {}, "Schedules"),
    page.content.length
      ? table(["Schedule", "Type", "Format", "Next run (schedule's zone)", "Next run (yours)", "Status"], page.content.map((s) => ({ id: s.id, item: s, cells: [link(s.id, `schedules/${s.id}`), scheduleKind(s.scheduleType),
        s.format, s.nextRunAt ? `${whenIn(s.nextRunAt, s.timezone)} ${s.timezone}` : "—", when(s.nextRunAt), s.status] })), (s) => go(`schedules/${s.id}`))
      : h("p", { class: "empty" }, "No schedules yet: a schedule sends a digest of the events it covers to an endpoint or by email."),
    isAdmin() ? await createScheduleForm() : null,
  ];
}

// The next 3 runs of a cron in a zone, asked of the API as the fields change (a weekly
// digest is Mondays at 09:00); what is wrong with them shown instead.
function runsPreview(cron, zone, type) {
  const out = h("span", { class: "preview", id: "schedule-preview" });
  let asked = 0;
  const refresh = async () => {
    const expr = type() === "weekly_digest" ? "0 9 * * 1" : type() === "custom_cron" ? cron.value.trim() : "";
    const mine = ++asked;
    if (!expr || !zone.value.trim()) { out.replaceChildren(); return; }
    const q = new URLSearchParams({ cronExpression: expr, timezone: zone.value.trim() });
    try {
      const p = await api("GET", `/v1/schedules/preview?${q}`);
      if (mine === asked) out.replaceChildren("Next runs: ", p.nextRuns.map((t) => whenIn(t, p.timezone)).join(" · "), ` (${p.timezone})`);
    } catch (e) {
      if (mine === asked) out.replaceChildren(h("span", { class: "failed" }, e.message));
    }
  };
  let timer;
  const later = () => { clearTimeout(timer); timer = setTimeout(refresh, 250); };
  for (const field of [cron, zone]) field.addEventListener("input", later);
  return { out, refresh };
}

async function createScheduleForm() {
  const endpoints = await api("GET", "/v1/endpoints?size=100");
  const select = (id, options) => h("select", { id }, options.map(([v, label]) => h("option", { value: v }, label)));
  const type = select("schedule-type", Object.entries(KINDS));
  const cron = h("input", { id: "schedule-cron", placeholder: "cron, like 0 9 * * 1-5", size: 18 });
  const status = h("input", { id: "schedule-status", placeholder: "status, like shipped", size: 14 });
  const at = h("input", { id: "schedule-at", type: "datetime-local" });
  const zone = h("input", { id: "schedule-zone", value: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC", size: 16, title: "time zone (IANA)" });
  const format = select("schedule-format", ["json", "markdown", "html", "pdf", "docx"].map((f) => [f, f]));
  const target = select("schedule-endpoint", endpoints.content.map((e) => [e.id, `to ${e.name}`]));
  const recipients = h("input", { id: "schedule-recipients", placeholder: "or email to: a@x.com, b@y.com", size: 26 });
  const shown = () => {
    cron.hidden = type.value !== "custom_cron";
    status.hidden = type.value !== "on_status_change";
    at.hidden = type.value !== "one_time";
  };
  const preview = runsPreview(cron, zone, () => type.value);
  type.addEventListener("change", () => { shown(); preview.refresh(); });
  shown();
  preview.refresh();
  return [h("h2", {}, "Add a schedule"), h("form", { class: "inline", onsubmit: action(async () => {
    const body = { scheduleType: type.value, timezone: zone.value.trim(), format: format.value };
    if (type.value === "custom_cron") body.cronExpression = cron.value.trim();
    if (type.value === "on_status_change") body.triggerStatus = status.value.trim();
    if (type.value === "one_time" && at.value) body.scheduledAt = new Date(at.value).toISOString();
    const to = recipients.value.split(",").map((x) => x.trim()).filter(Boolean);
    if (to.length) Object.assign(body, { deliveryMethod: "email", recipients: to });
    else Object.assign(body, { deliveryMethod: "webhook", endpointId: target.value });
    const created = await api("POST", "/v1/schedules", body);
    noticeNext(`Created ${scheduleKind(created.scheduleType)} ${created.id}; next run `,
      created.nextRunAt ? `${whenIn(created.nextRunAt, created.timezone)} (${created.timezone})` : "when its status is published");
  }) }, type, cron, status, at, zone, format, target, recipients, h("button", { id: "add-schedule", type: "submit" }, "Add")), preview.out];
}

// What a schedule's owner changes: when it fires, its zone and format, its subject.
function editScheduleForm(s) {
  const cron = h("input", { id: "edit-cron", value: s.cronExpression || "", size: 18, hidden: s.scheduleType !== "custom_cron" });
  const status = h("input", { id: "edit-status", value: s.triggerStatus || "", size: 14, hidden: s.scheduleType !== "on_status_change" });
  const zone = h("input", { id: "edit-zone", value: s.timezone, size: 16 });
  const format = h("select", { id: "edit-format" }, ["json", "markdown", "html", "pdf", "docx"].map((f) => h("option", { value: f, selected: f === s.format }, f)));
  const subject = h("input", { id: "edit-subject", value: s.customSubject || "", placeholder: "subject (optional)", size: 24 });
  const preview = runsPreview(cron, zone, () => s.scheduleType);
  preview.refresh();
  const row = (label, ...field) => [h("label", {}, label), h("div", {}, field)];
  return h("details", { id: "edit-schedule" }, h("summary", {}, "Edit schedule"),
    h("form", { class: "grid", onsubmit: action(async () => {
      const body = { timezone: zone.value.trim(), format: format.value };
      if (s.scheduleType === "custom_cron") body.cronExpression = cron.value.trim();
      if (s.scheduleType === "on_status_change") body.triggerStatus = status.value.trim();
      if (subject.value.trim() !== (s.customSubject || "")) body.customSubject = subject.value.trim();
      const saved = await api("PATCH", `/v1/schedules/${s.id}`, body);
      noticeNext("Saved. Next run ", saved.nextRunAt ? `${whenIn(saved.nextRunAt, saved.timezone)} (${saved.timezone})` : "when its status is published", ".");
    }) },
    s.scheduleType === "custom_cron" ? row("Cron", cron) : null,
    s.scheduleType === "on_status_change" ? row("On status", status) : null,
    row("Time zone", zone, " ", preview.out),
    row("Format", format),
    row("Subject", subject),
    h("button", { id: "save-schedule", type: "submit" }, "Save")));
}

export async function schedulePage(id, params) {
  const number = Number(params.get("page") || 0);
  const [s, runs] = await Promise.all([api("GET", `/v1/schedules/${id}`), api("GET", `/v1/schedules/${id}/runs?page=${number}&size=20`)]);
  return [
    h("h1", {}, `${scheduleKind(s.scheduleType)} `, h("small", {}, s.id)),
    h("p", {}, `Next run ${s.nextRunAt ? `${whenIn(s.nextRunAt, s.timezone)} (${s.timezone}), ${when(s.nextRunAt)} yours` : "—"} · ${s.format} by ${s.deliveryMethod}`),
    s.nextRuns.length > 1 ? h("p", { id: "next-runs" }, "Then ", s.nextRuns.slice(1).map((t) => whenIn(t, s.timezone)).join(" · "), ` (${s.timezone})`) : null,
    isAdmin() ? h("div", { class: "actions" },
      h("button", { id: "trigger", type: "button", onclick: action(() => api("POST", `/v1/schedules/${id}/trigger`)) }, "Run now"),
      h("button", { id: "delete-schedule", class: "plain danger", type: "button", onclick: action(async () => {
        if (!confirm("Delete this schedule and its run log?")) return "keep";
        await api("DELETE", `/v1/schedules/${id}`);
        noticeNext(`Deleted schedule ${id}.`);
        go("schedules");
        return "keep";
      }) }, "Delete")) : null,
    isAdmin() && s.status === "active" ? editScheduleForm(s) : null,
    h("h2", {}, "Runs"),
    runs.content.length
      ? table(["Run", "Status", "Started", "Events", "Delivery", "Error"], runs.content.map((r) => ({ cells: [r.id, status(r.status), when(r.startedAt), r.eventCount, r.deliveryId || r.emailResult || "—", r.error || "—"] })))
      : h("p", { class: "empty" }, "No runs yet."),
    pager(runs, (n) => go(`schedules/${id}`, { page: n })),
  ];
}
