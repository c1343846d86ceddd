//! What happens inside one SDK call, attempt by attempt: an interceptor on the IAM and STS clients
//! that reports every retry (an attempt after the first) and every throttled attempt — also those
//! the SDK's retries hide — charges each retry a token of the rate limiter, and tells it about
//! throttling. Does no I/O: it reads the
//! response the SDK already holds.

use std::fmt;
use std::sync::Arc;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

use super::error::AwsErrorKind;
use super::rate_limit::Limiter;

/// Something seen on one attempt of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The SDK sent the call again (second attempt or later).
    Retry,
    /// AWS answered the attempt with a throttling error.
    Throttled,
}

/// Told about retries and throttled attempts: `(operation, what)`.
pub type AttemptObserver = Arc<dyn Fn(&str, Attempt) + Send + Sync>;

/// The interceptor: reports attempts to an observer and throttling to a limiter.
#[derive(Clone)]
pub(crate) struct AttemptInterceptor {
    observer: Option<AttemptObserver>,
    limiter: Option<Limiter>,
}

impl fmt::Debug for AttemptInterceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttemptInterceptor")
            .field("observer", &self.observer.is_some())
            .field("limiter", &self.limiter)
            .finish()
    }
}

impl AttemptInterceptor {
    pub(crate) fn new(observer: Option<AttemptObserver>, limiter: Option<Limiter>) -> Self {
        AttemptInterceptor { observer, limiter }
    }

    fn report(&self, cfg: &ConfigBag, attempt: Attempt) {
        if let Some(observer) = &self.observer {
            let operation = cfg.load::<Metadata>().map_or("unknown", Metadata::name);
            observer(operation, attempt);
        }
    }
}

impl Intercept for AttemptInterceptor {
    fn name(&self) -> &'static str {
        "AttemptInterceptor"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if cfg
            .load::<RequestAttempts>()
            .is_some_and(|attempts| attempts.attempts() > 1)
        {
            self.report(cfg, Attempt::Retry);
            if let Some(limiter) = &self.limiter {
                limiter.charge();
            }
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let throttled = context.response().is_some_and(|response| {
            is_throttling(response.status().as_u16(), response.body().bytes())
        });
        if throttled {
            self.report(cfg, Attempt::Throttled);
            if let Some(limiter) = &self.limiter {
                limiter.throttled();
            }
        }
        Ok(())
    }
}

/// Whether a response is a throttling error: by the code of its XML (query protocol) or JSON
/// error body, else by status 429.
fn is_throttling(status: u16, body: Option<&[u8]>) -> bool {
    if status < 400 {
        return false;
    }
    let code = body
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(error_code);
    AwsErrorKind::from_code(code, Some(status)) == AwsErrorKind::Throttling
}

/// The error code of an XML (`<Code>…</Code>`) or JSON (`"__type"`) error body.
fn error_code(body: &str) -> Option<&str> {
    if let Some(start) = body.find("<Code>") {
        let rest = &body[start + "<Code>".len()..];
        return rest.find("</Code>").map(|end| rest[..end].trim());
    }
    let start = body.find("\"__type\"")?;
    let rest = &body[start + "\"__type\"".len()..];
    let value = rest.trim_start().strip_prefix(':')?.trim_start();
    let value = value.strip_prefix('"')?;
    let value = &value[..value.find('"')?];
    Some(value.rsplit('#').next().unwrap_or(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const THROTTLED: &str = "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>";

    #[test]
    fn throttling_is_recognised_by_code_or_status() {
        assert!(is_throttling(400, Some(THROTTLED.as_bytes())));
        assert!(is_throttling(429, None));
        assert!(is_throttling(
            400,
            Some(br#"{"__type":"com.amazon#ThrottlingException","message":"slow"}"#)
        ));
        let missing = THROTTLED.replace("Throttling", "NoSuchEntity");
        assert!(!is_throttling(404, Some(missing.as_bytes())));
        assert!(!is_throttling(503, Some(b"<html>unavailable</html>")));
        assert!(!is_throttling(200, Some(THROTTLED.as_bytes())));
    }

    #[test]
    fn error_codes_are_read_from_xml_and_json() {
        assert_eq!(error_code(THROTTLED), Some("Throttling"));
        assert_eq!(
            error_code(r#"{"__type": "Throttling"}"#),
            Some("Throttling")
        );
        assert_eq!(error_code("<Code>unterminated"), None);
        assert_eq!(error_code("nothing"), None);
    }
}
