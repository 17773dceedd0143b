// Charts of an endpoint's recent deliveries, drawn as SVG here: no framework, nothing loaded
// from elsewhere, so the dashboard works offline. Each takes the `points` of a stats series
// (`GET /v1/endpoints/{id}/stats/series`): {at, succeeded, failed, successRate, p50Ms, p99Ms}.

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, v);
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) el.append(c);
  return el;
}

const tip = (text) => svg("title", {}, text);
const total = (p) => p.succeeded + p.failed;
const sum = (points, f) => points.reduce((n, p) => n + f(p), 0);

// The smallest 1, 2 or 5 × 10ⁿ at or above `n`: a y axis that reads as a round number.
function roundUp(n) {
  if (n <= 0) return 1;
  const scale = 10 ** Math.floor(Math.log10(n));
  return [1, 2, 5, 10].map((m) => m * scale).find((m) => m >= n);
}

// A step's start as a person reads it: the hour for a day, the weekday and hour for a week.
function stepLabel(iso, stepSeconds) {
  const options = stepSeconds >= 6 * 3600
    ? { weekday: "short", hour: "2-digit", minute: "2-digit" }
    : { hour: "2-digit", minute: "2-digit" };
  return new Date(iso).toLocaleString(undefined, options);
}

const counts = (p) => `${p.succeeded} succeeded, ${p.failed} failed`;

export const rateText = (points) => {
  const done = sum(points, total);
  return done ? `${(sum(points, (p) => p.succeeded) * 100 / done).toFixed(1)}%` : "—";
};

// A row-sized picture of the window: one bar per step, its height the attempts in it, the
// failed part on top in red. Hover a bar for its step and counts.
export function sparkline(points, stepSeconds) {
  const width = 120, height = 24, gap = 1;
  const max = Math.max(1, ...points.map(total));
  const bar = width / Math.max(points.length, 1);
  const label = `${counts({ succeeded: sum(points, (p) => p.succeeded), failed: sum(points, (p) => p.failed) })}`;
  return svg("svg", { class: "sparkline", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label },
    tip(label),
    svg("line", { class: "base", x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5 }),
    points.map((p, i) => {
      const ok = (p.succeeded / max) * (height - 1), bad = (p.failed / max) * (height - 1);
      const x = i * bar, w = Math.max(bar - gap, 1);
      return svg("g", { class: "step" },
        tip(`${stepLabel(p.at, stepSeconds)}: ${counts(p)}`),
        p.succeeded ? svg("rect", { class: "ok", x, y: height - 1 - ok, width: w, height: ok }) : null,
        p.failed ? svg("rect", { class: "bad", x, y: height - 1 - ok - bad, width: w, height: bad }) : null);
    }));
}

// The frame shared by the larger charts: a plot area with the y axis' top and bottom labelled
// and the first, middle and last step under it.
const W = 420, H = 140, LEFT = 44, BOTTOM = 20, TOP = 8;
const plotW = W - LEFT - 8, plotH = H - BOTTOM - TOP;

const stepX = (points, i) => LEFT + (i + 0.5) * (plotW / points.length);
const valueY = (value, top) => TOP + plotH - (value / top) * plotH;

function frame(kind, label, points, stepSeconds, yTop, unit, ...plot) {
  const xs = [0, Math.floor(points.length / 2), points.length - 1].filter((i, k, all) => i >= 0 && all.indexOf(i) === k);
  return svg("svg", { class: `chart ${kind}`, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label },
    tip(label),
    svg("line", { class: "axis", x1: LEFT, x2: W - 8, y1: TOP + plotH, y2: TOP + plotH }),
    svg("line", { class: "grid", x1: LEFT, x2: W - 8, y1: TOP, y2: TOP }),
    svg("text", { class: "tick", x: LEFT - 6, y: TOP + 4, "text-anchor": "end" }, `${yTop}${unit}`),
    svg("text", { class: "tick", x: LEFT - 6, y: TOP + plotH, "text-anchor": "end" }, `0${unit}`),
    xs.map((i) => svg("text", {
      class: "tick", x: stepX(points, i), y: H - 4,
      "text-anchor": i === 0 ? "start" : i === points.length - 1 ? "end" : "middle",
    }, stepLabel(points[i].at, stepSeconds))),
    plot);
}

// A line through the points that have a value; a step without one breaks the line, and a
// dot marks every value so a lone step still shows.
function line(kind, points, value, top, unit, name, stepSeconds) {
  let d = "", open = false;
  const dots = [];
  points.forEach((p, i) => {
    const v = value(p);
    if (v === null || v === undefined) { open = false; return; }
    const x = stepX(points, i), y = valueY(v, top);
    d += `${open ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)} `;
    open = true;
    dots.push(svg("circle", { class: `dot ${kind}`, cx: x, cy: y, r: 2.5 }, tip(`${stepLabel(p.at, stepSeconds)}: ${name} ${v}${unit}`)));
  });
  return [d ? svg("path", { class: `line ${kind}`, d: d.trim() }) : null, ...dots];
}

// Deliveries per step: stacked bars, succeeded below and failed above.
export function deliveriesChart(points, stepSeconds, windowName) {
  const top = roundUp(Math.max(...points.map(total), 0));
  const slot = plotW / points.length, w = Math.max(slot - 2, 1);
  const label = `Attempts ${windowName}: ${counts({ succeeded: sum(points, (p) => p.succeeded), failed: sum(points, (p) => p.failed) })}`;
  return frame("deliveries", label, points, stepSeconds, top, "",
    points.map((p, i) => {
      const x = LEFT + i * slot + 1;
      const ok = (p.succeeded / top) * plotH, bad = (p.failed / top) * plotH;
      return svg("g", { class: "step" },
        tip(`${stepLabel(p.at, stepSeconds)}: ${counts(p)}`),
        p.succeeded ? svg("rect", { class: "ok", x, y: TOP + plotH - ok, width: w, height: ok }) : null,
        p.failed ? svg("rect", { class: "bad", x, y: TOP + plotH - ok - bad, width: w, height: bad }) : null);
    }));
}

// Success rate per step, 0–100%; steps without attempts have none.
export function rateChart(points, stepSeconds, windowName) {
  const label = `Success rate ${windowName}: ${rateText(points)}`;
  return frame("rate", label, points, stepSeconds, 100, "%",
    line("rate", points, (p) => p.successRate, 100, "%", "success rate", stepSeconds));
}

// Latency per step: p50 and p99, each the upper bound of the bucket it fell in.
export function latencyChart(points, stepSeconds, windowName) {
  const worst = Math.max(0, ...points.map((p) => p.p99Ms ?? p.p50Ms ?? 0));
  const top = roundUp(worst);
  const label = worst
    ? `Latency ${windowName}: p99 up to ${worst} ms`
    : `Latency ${windowName}: no attempts`;
  return frame("latency", label, points, stepSeconds, top, " ms",
    line("p50", points, (p) => p.p50Ms, top, " ms", "p50 ≤", stepSeconds),
    line("p99", points, (p) => p.p99Ms, top, " ms", "p99 ≤", stepSeconds));
}
