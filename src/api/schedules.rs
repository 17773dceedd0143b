//! Schedules: create, read, change, delete, trigger, and the run log.

use crate::model::Invalid;
use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::not_found;
use super::extract::{Auth, JsonBody, OptionalJson, Path, Query};
use super::page::page_json;
use super::{ApiError, AppState};
use crate::model::EndpointSettings;
use crate::model::endpoint::NewEndpoint;
use crate::model::endpoint::parse_url;
use crate::model::schedule::{
    DigestFormat, Schedule, ScheduleKind, ScheduleRun, ScheduleSpec, ScheduleTarget,
};
use crate::model::timing::{CronSpec, parse_zone};
use crate::model::{
    EndpointId, EventPattern, Role, ScheduleId, UnixMs, now_ms, parse_rfc3339, rfc3339,
};
use crate::schedule::firing::FireError;
use crate::signing;

/// The fields of a create or PATCH body.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ScheduleIn {
    schedule_type: Option<String>,
    cron_expression: Option<String>,
    trigger_status: Option<String>,
    scheduled_at: Option<String>,
    timezone: Option<String>,
    format: Option<String>,
    delivery_method: Option<String>,
    endpoint_id: Option<String>,
    webhook_url: Option<String>,
    recipients: Option<Vec<String>>,
    event_types: Option<Vec<String>>,
    include_changelog: Option<bool>,
    custom_subject: Option<String>,
    custom_message: Option<String>,
}

fn missing(field: &str, why: &str) -> Invalid {
    Invalid(format!("{field} is required {why}"))
}

impl ScheduleIn {
    /// Builds the spec from `base` (the stored one, for PATCH) and the present fields.
    fn apply(self, base: Option<ScheduleSpec>, now: UnixMs) -> Result<ScheduleSpec, Invalid> {
        if self.webhook_url.is_some() {
            return Err("webhookUrl can only be given when a schedule is created".into());
        }
        // Fields another type would use are checked whenever given.
        if let Some(status) = &self.trigger_status
            && (status.is_empty() || status.chars().count() > 100)
        {
            return Err("triggerStatus must be 1 to 100 characters".into());
        }
        let scheduled_at = match self.scheduled_at {
            Some(s) => match parse_rfc3339(&s) {
                Some(at) => Some((at, s)),
                None => return Err(format!("scheduledAt '{s}' is not an RFC 3339 instant").into()),
            },
            None => None,
        };
        let base_target = base.as_ref().map(|b| b.target.clone());
        let method = match (self.delivery_method.as_deref(), &base_target) {
            (Some(m @ ("webhook" | "email")), _) => m.to_owned(),
            (Some(other), _) => {
                return Err(
                    format!("deliveryMethod must be webhook or email (not '{other}')").into(),
                );
            }
            (None, Some(ScheduleTarget::Email(_))) => "email".into(),
            (None, Some(ScheduleTarget::Endpoint(_))) => "webhook".into(),
            (None, None) => return Err("deliveryMethod is required: webhook or email".into()),
        };
        let target = if method == "webhook" {
            if self.recipients.is_some() {
                return Err("recipients are for deliveryMethod email".into());
            }
            let id = match (self.endpoint_id, base_target) {
                (Some(e), _) => EndpointId::parse(&e)
                    .ok_or_else(|| format!("endpointId '{e}' is not an endpoint id"))?,
                (None, Some(ScheduleTarget::Endpoint(id))) => id,
                _ => return Err("endpointId is required for webhook delivery".into()),
            };
            ScheduleTarget::Endpoint(id)
        } else {
            if self.endpoint_id.is_some() {
                return Err(
                    "endpointId is for deliveryMethod webhook; email goes to recipients".into(),
                );
            }
            let to = match (self.recipients, base_target) {
                (Some(to), _) => to,
                (None, Some(ScheduleTarget::Email(to))) => to,
                _ => return Err("recipients is required for email delivery".into()),
            };
            if to.is_empty() || to.len() > 50 {
                return Err("recipients must list 1 to 50 email addresses".into());
            }
            for address in &to {
                address
                    .parse::<lettre::Address>()
                    .map_err(|_| format!("recipients: '{address}' is not a valid email address"))?;
            }
            ScheduleTarget::Email(to)
        };
        let timezone = match (self.timezone, &base) {
            (Some(z), _) => parse_zone(&z)?,
            (None, Some(b)) => b.timezone,
            (None, None) => {
                return Err("timezone is required: an IANA name such as Europe/Berlin".into());
            }
        };
        let format = match (self.format, &base) {
            (Some(f), _) => DigestFormat::parse(&f)?,
            (None, Some(b)) => b.format,
            (None, None) => return Err("format is required: json, markdown or html".into()),
        };
        let base_kind = base.as_ref().map(|b| b.kind.clone());
        let type_name = self
            .schedule_type
            .clone()
            .or_else(|| base_kind.as_ref().map(|k| k.as_str().to_owned()))
            .ok_or("scheduleType is required: weekly_digest, on_status_change, custom_cron or one_time")?;
        let kind = match type_name.as_str() {
            "weekly_digest" => ScheduleKind::WeeklyDigest,
            "custom_cron" => {
                let expr = match (self.cron_expression, base_kind) {
                    (Some(e), _) => e,
                    (None, Some(ScheduleKind::CustomCron(e, _))) => e,
                    _ => {
                        return Err(missing("cronExpression", "for custom_cron"));
                    }
                };
                let spec = CronSpec::parse(&expr)?;
                ScheduleKind::CustomCron(expr, spec)
            }
            "one_time" => {
                let at = match (scheduled_at, base_kind) {
                    (Some((at, s)), _) => {
                        if at <= now {
                            return Err(format!("scheduledAt '{s}' is in the past").into());
                        }
                        at
                    }
                    (None, Some(ScheduleKind::OneTime(at))) => at,
                    _ => {
                        return Err(missing("scheduledAt", "for one_time"));
                    }
                };
                ScheduleKind::OneTime(at)
            }
            "on_status_change" => {
                let status = match (self.trigger_status, base_kind) {
                    (Some(s), _) => s,
                    (None, Some(ScheduleKind::OnStatusChange(s))) => s,
                    _ => {
                        return Err(missing("triggerStatus", "for on_status_change"));
                    }
                };
                ScheduleKind::OnStatusChange(status)
            }
            other => {
                return Err(format!(
                    "scheduleType must be weekly_digest, on_status_change, custom_cron or one_time (not '{other}')"
                ).into());
            }
        };
        let event_types = match (self.event_types, &base) {
            (Some(list), _) => Some(
                list.iter()
                    .map(|p| EventPattern::parse(p))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("eventTypes: {e}"))?,
            ),
            (None, Some(b)) => b.event_types.clone(),
            (None, None) => None,
        };
        let text = |v: Option<String>, old: Option<String>, field: &str, max: usize| match v {
            Some(s) if s.chars().count() > max => {
                Err(format!("{field} must be at most {max} characters"))
            }
            Some(s) => Ok(Some(s)),
            None => Ok(old),
        };
        let spec = ScheduleSpec {
            kind,
            timezone,
            format,
            target,
            event_types,
            include_changelog: self
                .include_changelog
                .unwrap_or(base.as_ref().is_some_and(|b| b.include_changelog)),
            custom_subject: text(
                self.custom_subject,
                base.as_ref().and_then(|b| b.custom_subject.clone()),
                "customSubject",
                200,
            )?,
            custom_message: text(
                self.custom_message,
                base.as_ref().and_then(|b| b.custom_message.clone()),
                "customMessage",
                5000,
            )?,
        };
        if let ScheduleKind::CustomCron(expr, _) = &spec.kind
            && spec.next_run(now).is_none()
        {
            return Err(format!(
                "cronExpression '{expr}' never fires (it names no date that exists after now), so the schedule would never run"
            ).into());
        }
        Ok(spec)
    }
}

/// How many upcoming runs a schedule's answer (and a preview) lists.
const UPCOMING: usize = 3;

fn schedule_json(s: &Schedule) -> Value {
    let spec = &s.spec;
    let (cron, status, at) = match &spec.kind {
        ScheduleKind::CustomCron(e, _) => (Some(e.clone()), None, None),
        ScheduleKind::OnStatusChange(t) => (None, Some(t.clone()), None),
        ScheduleKind::OneTime(at) => (None, None, Some(rfc3339(*at))),
        ScheduleKind::WeeklyDigest => (None, None, None),
    };
    json!({
        "id": s.id,
        "scheduleType": spec.kind.as_str(),
        "cronExpression": cron,
        "triggerStatus": status,
        "scheduledAt": at,
        "timezone": spec.timezone.name(),
        "format": spec.format.as_str(),
        "deliveryMethod": if spec.target.endpoint().is_some() { "webhook" } else { "email" },
        "endpointId": spec.target.endpoint(),
        "webhookUrl": null,
        "recipients": match &spec.target {
            ScheduleTarget::Email(to) => json!(to),
            ScheduleTarget::Endpoint(_) => Value::Null,
        },
        "eventTypes": spec.event_types.as_ref().map(|p| p.iter().map(ToString::to_string).collect::<Vec<_>>()),
        "includeChangelog": spec.include_changelog,
        "customSubject": spec.custom_subject,
        "customMessage": spec.custom_message,
        "status": s.status.as_str(),
        "nextRunAt": s.next_run_at.map(rfc3339),
        "nextRuns": spec.upcoming(s.next_run_at, UPCOMING).into_iter().map(rfc3339).collect::<Vec<_>>(),
        "lastRunAt": s.last_run_at.map(rfc3339),
        "createdAt": rfc3339(s.created_at),
        "updatedAt": rfc3339(s.updated_at),
    })
}

fn run_json(r: &ScheduleRun) -> Value {
    json!({
        "id": r.id,
        "status": r.status.as_str(),
        "startedAt": rfc3339(r.started_at),
        "finishedAt": r.finished_at.map(rfc3339),
        "periodStart": rfc3339(r.period.0),
        "periodEnd": rfc3339(r.period.1),
        "eventCount": r.event_count,
        "deliveryId": r.delivery_id,
        "error": r.error,
        "emailResult": r.email_result,
    })
}

/// Email schedules need the `[smtp]` settings.
fn email_possible(state: &AppState, wants_email: bool) -> Result<(), ApiError> {
    if wants_email && !state.email_enabled {
        return Err(ApiError::invalid(
            "deliveryMethod email needs the [smtp] settings in hookd.toml, which this server does not have",
        ));
    }
    Ok(())
}

fn schedule_id(id: &str) -> Result<ScheduleId, ApiError> {
    ScheduleId::parse(id).ok_or_else(|| ApiError::not_found("schedule"))
}

pub(super) async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body: JsonBody<ScheduleIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    let body = body.parse().await?;
    let Some(url) = body.webhook_url.clone() else {
        let spec = body.apply(None, now_ms()).map_err(ApiError::invalid)?;
        email_possible(&state, spec.target.endpoint().is_none())?;
        let schedule = state.store.create_schedule(tenant, spec, None).await?;
        return Ok((StatusCode::CREATED, Json(schedule_json(&schedule))));
    };
    // An ad-hoc webhookUrl gets an endpoint of its own, signed with a secret generated for
    // the schedule and returned once. Everything is validated before anything is created.
    if body.endpoint_id.is_some() || body.delivery_method.as_deref() == Some("email") {
        return Err(ApiError::invalid(
            "webhookUrl replaces endpointId, for webhook delivery only",
        ));
    }
    let url = parse_url(&url).map_err(|e| ApiError::invalid(format!("webhookUrl: {e}")))?;
    state
        .policy
        .check_url(&url)
        .await
        .map_err(|e| ApiError::invalid(format!("webhookUrl: {e}")))?;
    // The spec names a placeholder endpoint; the store puts the new endpoint's id in its place.
    let mut body = body;
    body.webhook_url = None;
    body.endpoint_id = Some(EndpointId(1).to_string());
    let spec = body.apply(None, now_ms()).map_err(ApiError::invalid)?;
    let pattern = EventPattern::parse("schedule.digest.adhoc").map_err(ApiError::invalid)?;
    let settings = EndpointSettings::new("Schedule digest webhook".into(), url, vec![pattern]);
    let secret = signing::generate_secret();
    let new = NewEndpoint {
        settings,
        secret: secret.clone(),
    };
    // The schedule and its endpoint are created in one write.
    let url = new.settings.url.to_string();
    let schedule = state.store.create_schedule(tenant, spec, Some(new)).await?;
    let mut out = schedule_json(&schedule);
    out["webhookUrl"] = Value::String(url);
    out["secret"] = Value::String(secret);
    Ok((StatusCode::CREATED, Json(out)))
}

pub(super) async fn list(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Viewer)?;
    let endpoint = match query.get("endpointId") {
        Some(e) => Some(
            EndpointId::parse(e)
                .ok_or_else(|| ApiError::invalid("endpointId is not an endpoint id"))?,
        ),
        None => None,
    };
    let page = state
        .store
        .list_schedules(tenant, endpoint, query.page()?)
        .await?;
    Ok(Json(page_json(page, schedule_json)))
}

pub(super) async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Viewer)?;
    let s = state
        .store
        .get_schedule(tenant, schedule_id(&id)?)
        .await
        .map_err(not_found("schedule"))?;
    Ok(Json(schedule_json(&s)))
}

pub(super) async fn patch(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: JsonBody<ScheduleIn>,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    let body = body.parse().await?;
    if body.delivery_method.as_deref() == Some("email") {
        email_possible(&state, true)?;
    }
    let now = now_ms();
    let patch = Box::new(move |spec: &mut ScheduleSpec| {
        *spec = body.apply(Some(spec.clone()), now)?;
        Ok(())
    });
    let s = state
        .store
        .update_schedule(tenant, schedule_id(&id)?, patch)
        .await
        .map_err(not_found("schedule"))?;
    Ok(Json(schedule_json(&s)))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    state
        .store
        .delete_schedule(tenant, schedule_id(&id)?)
        .await
        .map_err(not_found("schedule"))?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn trigger(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    span: Option<axum::Extension<super::traced::RequestSpan>>,
    body: OptionalJson<super::extract::NoFields>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = auth.tenant(Role::Admin)?;
    body.parse().await?;
    let parent = span.map(|axum::Extension(s)| s.place);
    let id = schedule_id(&id)?;
    let run = crate::schedule::firing::trigger(&state.store, tenant, id, &state.telemetry, parent)
        .await
        .map_err(|e| match e {
            FireError::Store(e) => not_found("schedule")(e),
            FireError::Busy => ApiError::conflict(e.to_string()),
            other => {
                tracing::error!(error = %crate::report::ErrorChain(&other), "schedule run failed");
                ApiError::internal()
            }
        })?;
    Ok((StatusCode::ACCEPTED, Json(json!({"runId": run}))))
}

pub(super) async fn runs(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    query: Query,
) -> Result<Json<Value>, ApiError> {
    let tenant = auth.tenant(Role::Viewer)?;
    let page = state
        .store
        .list_runs(tenant, schedule_id(&id)?, query.page()?)
        .await
        .map_err(not_found("schedule"))?;
    Ok(Json(page_json(page, run_json)))
}

/// `GET /v1/schedules/preview?cronExpression=&timezone=`: when a cron would fire next in a
/// zone, before a schedule is made or changed, refused as creating it would be.
pub(super) async fn preview(auth: Auth, query: Query) -> Result<Json<Value>, ApiError> {
    auth.tenant(Role::Viewer)?;
    let required = |field: &str, example: &str| {
        query
            .get(field)
            .ok_or_else(|| ApiError::invalid(format!("{field} is required, like {example}")))
    };
    let expr = required("cronExpression", "0 9 * * 1-5")?;
    let zone = required("timezone", "Europe/Berlin")?;
    let spec = CronSpec::parse(expr).map_err(ApiError::invalid)?;
    let timezone = parse_zone(zone).map_err(ApiError::invalid)?;
    let now = chrono::DateTime::from_timestamp_millis(now_ms()).unwrap_or_default();
    let runs: Vec<String> = spec
        .upcoming(timezone, now, UPCOMING)
        .iter()
        .map(|t| rfc3339(t.timestamp_millis()))
        .collect();
    if runs.is_empty() {
        return Err(ApiError::invalid(format!(
            "cronExpression '{expr}' never fires (it names no date that exists after now)"
        )));
    }
    Ok(Json(json!({
        "cronExpression": expr,
        "timezone": timezone.name(),
        "nextRuns": runs,
    })))
}
