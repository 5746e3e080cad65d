//! The `GetOnlineFeatures` handler: deadline in, store call, status out. Validation and reads live in
//! `feature_store`.

use std::time::{Duration, Instant};

use feature_store::OnlineStore;
use proto::features::v1::feature_service_server::FeatureService;
use proto::features::v1::{GetOnlineFeaturesRequest, GetOnlineFeaturesResponse};
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};

use crate::Error;

/// `features.v1.FeatureService` over an [`OnlineStore`].
#[derive(Clone)]
pub struct FeatureServiceImpl {
    store: OnlineStore,
}

impl FeatureServiceImpl {
    pub fn new(store: OnlineStore) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl FeatureService for FeatureServiceImpl {
    async fn get_online_features(
        &self,
        request: Request<GetOnlineFeaturesRequest>,
    ) -> Result<Response<GetOnlineFeaturesResponse>, Status> {
        let deadline = grpc_deadline(request.metadata()).map(answer_by);
        let request = request.into_inner();
        let rows = request.entities.values().map(|c| c.val.len()).max().unwrap_or(0);
        match self.store.get_online_features(&request, deadline).await {
            Ok(response) => {
                tracing::debug!(features = request.features.len(), rows, "online features served");
                Ok(Response::new(response))
            }
            Err(error) => {
                let error_type = error.error_type();
                // Redis round trips that failed: the store has logged them (rate-limited) already.
                let logged = matches!(
                    error,
                    feature_store::Error::Unavailable(_)
                        | feature_store::Error::Timeout(_)
                        | feature_store::Error::Redis(_)
                );
                let status = Status::from(Error::from(error));
                let grpc_code = telemetry::grpc_code_name(status.code());
                match status.code() {
                    Code::InvalidArgument | Code::NotFound => {
                        tracing::info!(grpc.code = grpc_code, error_type, error = %status.message(), "request rejected");
                    }
                    _ if logged => tracing::debug!(
                        grpc.code = grpc_code,
                        error_type,
                        error = %status.message(),
                        "online features failed"
                    ),
                    _ => tracing::warn!(
                        grpc.code = grpc_code,
                        error_type,
                        error = %status.message(),
                        features = request.features.len(),
                        rows,
                        "online features failed"
                    ),
                }
                Err(status)
            }
        }
    }
}

/// When to give up so that our answer reaches the caller before the deadline itself, where tonic's own
/// timeout would cancel the call first: 5% of what is left, 1 to 10 ms. The store answers a Redis that is
/// too slow with UNAVAILABLE values by then (it keeps a reserve of its own for building that answer).
fn answer_by(deadline: Instant) -> Instant {
    let left = deadline.saturating_duration_since(Instant::now());
    let margin = (left / 20).clamp(Duration::from_millis(1), Duration::from_millis(10));
    deadline.checked_sub(margin).unwrap_or(deadline)
}

/// The call's deadline from its `grpc-timeout` header (`<digits><H|M|S|m|u|n>`, at most 8 digits); `None`
/// when the caller set none or sent one that does not parse.
pub fn grpc_deadline(metadata: &MetadataMap) -> Option<Instant> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    };
    Instant::now().checked_add(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadline_in(header: &str) -> Option<Duration> {
        let mut metadata = MetadataMap::new();
        metadata.insert("grpc-timeout", header.parse().expect("ascii"));
        grpc_deadline(&metadata).map(|d| d.saturating_duration_since(Instant::now()))
    }

    #[test]
    fn grpc_timeouts_parse() {
        let close = |d: Option<Duration>, want: Duration| {
            d.is_some_and(|d| d <= want && want - d < Duration::from_millis(50))
        };
        assert!(close(deadline_in("250m"), Duration::from_millis(250)));
        assert!(close(deadline_in("2S"), Duration::from_secs(2)));
        assert!(close(deadline_in("1M"), Duration::from_secs(60)));
        assert!(close(deadline_in("1H"), Duration::from_secs(3600)));
        assert!(close(deadline_in("5000u"), Duration::from_millis(5)));
        assert!(close(deadline_in("99999999n"), Duration::from_nanos(99_999_999)));
        for bad in ["", "m", "123", "123456789m", "12x", "-1m", "1.5S"] {
            assert_eq!(deadline_in(bad), None, "{bad}");
        }
        assert_eq!(grpc_deadline(&MetadataMap::new()), None);
    }
}
