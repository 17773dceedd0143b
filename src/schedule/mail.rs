//! The mailer: sends email digests (schedule runs with `deliveryMethod: email`) over SMTP with
//! lettre, the document attached, and records each attempt on the run; failed sends are
//! retried on `email_retry_schedule` like deliveries.

use std::future::Future;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{SmtpConfig, SmtpTls};
use crate::model::delivery::next_retry_delay;
use crate::model::run::{EmailAfter, EmailJob};
use crate::model::{UnixMs, now_ms};
use crate::report::ErrorChain;
use crate::store::Store;

/// Why an email could not be sent; the sentence is what the run log shows.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The SMTP relay cannot be set up (TLS).
    #[error("SMTP relay: {0}")]
    Relay(#[source] lettre::transport::smtp::Error),
    /// The configured sender is not an address.
    #[error("bad sender address: {0}")]
    Sender(#[source] lettre::address::AddressError),
    /// A recipient is not an address.
    #[error("bad address {to}: {source}")]
    Recipient {
        /// The recipient as given.
        to: String,
        /// Why.
        source: lettre::address::AddressError,
    },
    /// The attachment's type is not a MIME type.
    #[error("attachment type: {0}")]
    Attachment(#[source] lettre::message::header::ContentTypeErr),
    /// The message could not be built.
    #[error("cannot build the email: {0}")]
    Build(#[source] lettre::error::Error),
    /// The SMTP server refused or could not be reached.
    #[error("SMTP: {0}")]
    Smtp(#[source] lettre::transport::smtp::Error),
}

/// Sends due email runs every `interval` until `shutdown` resolves.
pub async fn run(
    store: Store,
    smtp: SmtpConfig,
    retry: Vec<Duration>,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let transport = match transport(&smtp) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %ErrorChain(&e), "cannot set up SMTP; email digests will wait");
            return;
        }
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(interval) => {}
        }
        let jobs = match store.claim_email_runs(now_ms(), 10, 120_000).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "cannot claim email runs");
                continue;
            }
        };
        for job in jobs {
            let result = send(&transport, &smtp.from, &job).await;
            if let Err(e) = &result {
                tracing::warn!(run_id = %job.run_id, error = %ErrorChain(e), "email digest not sent");
            }
            let jitter = 0.8 + rand::random::<f64>() * 0.4;
            let after = after_send(result, job.attempt, &retry, jitter, now_ms());
            if let Err(e) = store.record_email(&job, after).await {
                tracing::error!(run_id = %job.run_id, error = %ErrorChain(&e), "cannot record an email attempt");
            }
        }
    }
}

/// What follows send attempt number `attempt` (the server's answer, or the error as the run
/// log shows it): done, tried again after the email retry schedule's next delay, or failed
/// for good once the schedule is used up.
pub fn after_send<E: std::fmt::Display>(
    result: Result<String, E>,
    attempt: u32,
    retry: &[Duration],
    jitter: f64,
    now: UnixMs,
) -> EmailAfter {
    match result {
        Ok(message) => EmailAfter::Sent(message),
        Err(error) => {
            let note = format!("attempt {attempt} failed: {error}");
            match next_retry_delay(retry, attempt, jitter, None) {
                Some(ms) => EmailAfter::RetryAt {
                    at: now + ms as i64,
                    note,
                },
                None => EmailAfter::Failed {
                    note,
                    error: error.to_string(),
                },
            }
        }
    }
}

fn transport(smtp: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let builder = match smtp.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
            .map_err(MailError::Relay)?,
        SmtpTls::Tls => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host).map_err(MailError::Relay)?
        }
    };
    let builder = builder
        .port(smtp.port)
        .timeout(Some(Duration::from_secs(30)));
    let builder = match (&smtp.username, &smtp.password) {
        (Some(user), Some(pass)) => {
            builder.credentials(Credentials::new(user.clone(), pass.clone()))
        }
        _ => builder,
    };
    Ok(builder.build())
}

/// Sends one email run; the result is what the run log shows.
async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &str,
    job: &EmailJob,
) -> Result<String, MailError> {
    let from: Mailbox = from.parse().map_err(MailError::Sender)?;
    let mut builder = Message::builder().from(from).subject(job.subject.clone());
    for to in &job.recipients {
        builder = builder.to(to
            .parse::<Mailbox>()
            .map_err(|source| MailError::Recipient {
                to: to.clone(),
                source,
            })?);
    }
    let (filename, mime) = job.format.attachment();
    let content_type = ContentType::parse(mime).map_err(MailError::Attachment)?;
    let text = job
        .message
        .clone()
        .unwrap_or_else(|| format!("{} is attached.", job.subject));
    let body = MultiPart::mixed()
        .singlepart(SinglePart::plain(text))
        .singlepart(Attachment::new(filename.to_owned()).body(job.document.clone(), content_type));
    let message = builder.multipart(body).map_err(MailError::Build)?;
    let response = transport.send(message).await.map_err(MailError::Smtp)?;
    Ok(format!(
        "sent to {} recipient(s): {}",
        job.recipients.len(),
        response.code()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_send_is_retried_on_the_schedule_then_fails_for_good() {
        let retry = [Duration::from_secs(60), Duration::from_secs(300)];
        assert_eq!(
            after_send(Ok::<_, &str>("250 ok".into()), 1, &retry, 1.0, 0),
            EmailAfter::Sent("250 ok".into())
        );
        assert_eq!(
            after_send(Err::<String, _>("refused"), 1, &retry, 1.0, 1000),
            EmailAfter::RetryAt {
                at: 61_000,
                note: "attempt 1 failed: refused".into()
            }
        );
        assert_eq!(
            after_send(Err::<String, _>("refused"), 3, &retry, 1.0, 0),
            EmailAfter::Failed {
                note: "attempt 3 failed: refused".into(),
                error: "refused".into()
            }
        );
    }
}
