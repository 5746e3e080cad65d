//! One way every service logs a request it could not answer: [`RequestFailed`], whose [`Blame`] decides
//! the level, so that a search for `"request failed"` finds failures of every service alike.

use std::fmt::Display;
use std::time::{Duration, Instant};

/// Whose fault a failed request is: its log level. Every failed request has its line (an operator
/// searches for the request id a caller quotes); what an outage repeats is aggregated in the lines about
/// the dependency itself (a breaker opening, `Redis connection failed`), not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The caller sent what cannot be served (a bad field, an unknown quote or model): WARN, each time,
    /// so the team calling can find its own mistakes.
    Caller,
    /// This service was too busy or too slow (shed, timed out under load): WARN, each time.
    Load,
    /// A dependency is down, overloaded or too slow: WARN, each time.
    Dependency,
    /// Already logged where it happened (e.g. the Redis client's failure log): DEBUG.
    Reported,
    /// This service's own fault or a broken contract: ERROR.
    Server,
}

/// A request answered with an error status.
pub struct RequestFailed<'a> {
    /// The error's bounded kind (the `error_type` facet).
    pub error_type: &'static str,
    pub blame: Blame,
    pub code: tonic::Code,
    pub error: &'a dyn Display,
    /// Time since the request arrived (the `duration_ms` latency facet).
    pub duration: Duration,
}

impl RequestFailed<'_> {
    /// Writes the line, at the level its blame calls for.
    pub fn emit(&self) {
        let Self {
            error_type, error, ..
        } = *self;
        let code = telemetry::grpc_code_name(self.code);
        let duration_ms = self.duration.as_secs_f64() * 1e3;
        match self.blame {
            Blame::Caller | Blame::Load | Blame::Dependency => {
                tracing::warn!(error_type, grpc.code = code, error.message = %error, duration_ms, "request failed");
            }
            Blame::Reported => {
                tracing::debug!(error_type, grpc.code = code, error.message = %error, duration_ms, "request failed");
            }
            Blame::Server => {
                tracing::error!(error_type, grpc.code = code, error.message = %error, duration_ms, "request failed");
            }
        }
    }
}

/// An error a service answers a request with: its bounded kind and whose fault it is.
pub trait Failure: Display + Into<tonic::Status> {
    /// The `error_type` facet: bounded and stable.
    fn error_type(&self) -> &'static str;
    fn blame(&self) -> Blame;
}

/// Logs `error` as the request's one failure line ([`RequestFailed`]), then turns it into its status.
/// `started`: when the request arrived.
pub fn reject(error: impl Failure, started: Instant) -> tonic::Status {
    let (error_type, blame, message) = (error.error_type(), error.blame(), error.to_string());
    let status: tonic::Status = error.into();
    RequestFailed {
        error_type,
        blame,
        code: status.code(),
        error: &message,
        duration: started.elapsed(),
    }
    .emit();
    status
}
