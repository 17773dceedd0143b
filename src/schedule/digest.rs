//! A schedule's digest: what it is made of ([`Digest`]) and its text forms (JSON, Markdown,
//! HTML, and the plain lines the PDF and DOCX documents print).

use serde_json::{Map, Value, json};

use crate::render::truncate;

/// What a schedule's digest is made of.
#[derive(Debug, Clone)]
pub struct Digest {
    /// The title (the schedule's `customSubject`, or a default).
    pub subject: String,
    /// A message printed first (`customMessage`).
    pub message: Option<String>,
    /// RFC 3339 start and end of the period.
    pub period: (String, String),
    /// Events per type in the period, by type.
    pub counts: Vec<(String, u64)>,
    /// The newest events of the period, newest first: (id, type, RFC 3339 time, data JSON).
    pub events: Vec<(String, String, String, String)>,
    /// Whether to add the changelog section (the period's events, oldest first, as lines).
    pub include_changelog: bool,
}

impl Digest {
    /// Events in the period, all types together.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|(_, n)| n).sum()
    }
}

/// The digest as a JSON object: the `json` format.
pub fn json(d: &Digest) -> Value {
    json!({
        "subject": d.subject,
        "message": d.message,
        "periodStart": d.period.0,
        "periodEnd": d.period.1,
        "eventCount": d.total(),
        "counts": d.counts.iter().map(|(t, n)| (t.clone(), json!(n))).collect::<Map<_, _>>(),
        "events": d.events.iter().map(|(id, t, at, data)| json!({
            "id": id, "type": t, "createdAt": at,
            "data": serde_json::from_str::<Value>(data).unwrap_or(Value::Null),
        })).collect::<Vec<_>>(),
        "changelog": d.include_changelog.then(|| changelog_lines(d)),
    })
}

/// The digest as plain lines (title, message, totals, counts, events, changelog): the text of
/// the PDF and DOCX documents.
pub fn plain_lines(d: &Digest) -> Vec<String> {
    let mut lines = vec![d.subject.clone()];
    if let Some(m) = &d.message {
        lines.push(m.clone());
    }
    lines.push(format!(
        "{} events from {} to {}.",
        d.total(),
        d.period.0,
        d.period.1
    ));
    for (t, n) in &d.counts {
        lines.push(format!("{t}: {n}"));
    }
    if !d.events.is_empty() {
        lines.push("Events".into());
        for (id, t, at, data) in &d.events {
            lines.push(format!("{at} {t} ({id}) {}", truncate(data, 120)));
        }
    }
    if d.include_changelog {
        lines.push("Changelog".into());
        lines.extend(changelog_lines(d));
    }
    lines
}

fn changelog_lines(d: &Digest) -> Vec<String> {
    d.events
        .iter()
        .rev()
        .map(|(id, t, at, _)| format!("{at} {t} ({id})"))
        .collect()
}

/// The digest as Markdown: the `markdown` format.
pub fn markdown(d: &Digest) -> String {
    let mut out = format!(
        "# {}

",
        d.subject
    );
    if let Some(m) = &d.message {
        out.push_str(&format!(
            "{m}

"
        ));
    }
    out.push_str(&format!(
        "{} events from {} to {}.

",
        d.total(),
        d.period.0,
        d.period.1
    ));
    out.push_str(
        "| event type | count |
|---|---|
",
    );
    for (t, n) in &d.counts {
        out.push_str(&format!(
            "| {t} | {n} |
"
        ));
    }
    if !d.events.is_empty() {
        out.push_str(
            "
## Events

",
        );
        for (id, t, at, data) in &d.events {
            out.push_str(&format!(
                "- `{at}` **{t}** ({id}): {}
",
                truncate(data, 200)
            ));
        }
    }
    if d.include_changelog {
        out.push_str(
            "
## Changelog

",
        );
        for line in changelog_lines(d) {
            out.push_str(&format!(
                "- {line}
"
            ));
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The digest as an HTML page: the `html` format.
pub fn html(d: &Digest) -> String {
    let mut out = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{0}</title></head><body><h1>{0}</h1>",
        escape(&d.subject)
    );
    if let Some(m) = &d.message {
        out.push_str(&format!("<p>{}</p>", escape(m)));
    }
    out.push_str(&format!(
        "<p>{} events from {} to {}.</p><table><tr><th>event type</th><th>count</th></tr>",
        d.total(),
        escape(&d.period.0),
        escape(&d.period.1)
    ));
    for (t, n) in &d.counts {
        out.push_str(&format!("<tr><td>{}</td><td>{n}</td></tr>", escape(t)));
    }
    out.push_str("</table>");
    if !d.events.is_empty() {
        out.push_str("<h2>Events</h2><ul>");
        for (id, t, at, data) in &d.events {
            out.push_str(&format!(
                "<li><time>{}</time> <b>{}</b> ({}): <code>{}</code></li>",
                escape(at),
                escape(t),
                escape(id),
                escape(&truncate(data, 200))
            ));
        }
        out.push_str("</ul>");
    }
    if d.include_changelog {
        out.push_str("<h2>Changelog</h2><ul>");
        for line in changelog_lines(d) {
            out.push_str(&format!("<li>{}</li>", escape(&line)));
        }
        out.push_str("</ul>");
    }
    out.push_str("</body></html>");
    out
}
