//! [`Server`]: the tonic builder every service starts from, and serving with a drain and a grace period.
//!
//! Shutdown, once the `shutdown` future resolves (SIGTERM):
//! 1. health turns NOT_SERVING at once, so load balancers and readiness probes stop sending new work;
//! 2. for `SHUTDOWN_DRAIN_DELAY_MS` the server keeps serving as usual, because they only notice at their
//!    next probe or endpoint update, and whatever they still send should be answered, not refused;
//! 3. then it stops accepting: the listener closes and every connection gets an HTTP/2 GOAWAY (tonic's
//!    graceful shutdown), so clients reconnect elsewhere while requests already started continue;
//! 4. in-flight requests get `SHUTDOWN_GRACE_MS` to finish; [`Server::serve`] then returns `Ok` either
//!    way, logging "drained" or "grace period over with requests in flight", and the process exits.
//!    Requests still running at that point are cut off when the process exits.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::server::Router;
use tower::layer::util::{Identity, Stack};
use tower::{BoxError, Layer, Service};

use crate::{Error, Health, Listen, OverloadLayer, ServerArgs};

/// What [`Server::builder`] returns: a tonic server builder with [`OverloadLayer`] outermost. A service
/// adds its own layers (inside the limit, so refused requests cost nothing more) and its services.
pub type Builder = tonic::transport::Server<Stack<OverloadLayer, Identity>>;

/// HTTP/2 PINGs on a connection silent this long find clients that vanished without closing it (a node
/// lost, a NAT entry expired), so their connections stop holding server resources.
const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// A PING unanswered this long closes the connection.
const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that connects and never finishes the TLS handshake is dropped after this long.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One service's server plumbing, from its [`ServerArgs`].
///
/// ```ignore
/// let server = server_kit::Server::new(&config.server, metrics.clone())?;
/// let router = server
///     .builder()
///     .layer(GrpcServerLayer::new())
///     .add_service(health_server)
///     .add_service(
///         ModelServiceServer::new(models).max_decoding_message_size(server.max_request_bytes()),
///     );
/// server.serve(router, listener, shutdown, &health).await?;
/// ```
#[derive(Clone)]
pub struct Server {
    /// TLS and keepalive, no layers.
    base: tonic::transport::Server,
    overload: OverloadLayer,
    drain: Duration,
    grace: Duration,
    max_request_bytes: usize,
    max_response_bytes: usize,
    security: &'static str,
    health_addr: Option<SocketAddr>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("overload", &self.overload)
            .field("drain", &self.drain)
            .field("grace", &self.grace)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("security", &self.security)
            .field("health_addr", &self.health_addr)
            .finish()
    }
}

impl Server {
    /// Reads and checks the TLS files (if any) and sets up the concurrency limit; shed requests are
    /// counted on `metrics`. Fails, naming the setting and file, on anything a service should not start
    /// with.
    pub fn new(args: &ServerArgs, metrics: Metrics) -> Result<Self, Error> {
        let overload = OverloadLayer::new(args.max_concurrent_requests as usize, metrics);
        let mut builder = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
            // h2 closes a connection (GOAWAY) once more than 20 streams its peer reset wait to be
            // accepted: a guard against rapid-reset floods that, on a server short of CPU, also fires
            // when a caller's deadlines expire faster than the server accepts, and then fails every call
            // on the connection, not just the late ones. As many as the calls it may run bounds the same.
            .http2_max_pending_accept_reset_streams(Some(args.max_concurrent_requests as usize));
        let security = match args.server_tls()? {
            None => "plaintext",
            Some(tls) => {
                let tls = tls.timeout(TLS_HANDSHAKE_TIMEOUT);
                builder = builder.tls_config(tls).map_err(|error| Error::Tls {
                    cert: args.tls_cert_file.clone().unwrap_or_default(),
                    key: args.tls_key_file.clone().unwrap_or_default(),
                    reason: crate::error::chain(&error),
                })?;
                if args.tls_client_ca_file.is_some() {
                    "mutual TLS"
                } else {
                    "TLS"
                }
            }
        };
        Ok(Self {
            base: builder,
            overload,
            drain: args.drain_delay(),
            grace: args.grace(),
            max_request_bytes: args.max_request_bytes(),
            max_response_bytes: args.max_response_bytes(),
            security,
            health_addr: args.health_listen_addr,
        })
    }

    /// A tonic server builder: TLS when configured, HTTP/2 keepalive, the concurrency limit outermost.
    /// TCP_NODELAY is set by [`Server::serve`] on the accepted connections.
    pub fn builder(&self) -> Builder {
        self.base.clone().layer(self.overload.clone())
    }

    /// [`Server::builder`] without the concurrency limit, for a service that places
    /// [`Server::overload`] in its own stack instead, e.g. inside its API metrics layer so that refused
    /// calls are counted there too. Forgetting to add it leaves the service without overload protection.
    pub fn builder_without_limit(&self) -> tonic::transport::Server {
        self.base.clone()
    }

    /// `MAX_REQUEST_BYTES`, for every generated server's `max_decoding_message_size`.
    pub fn max_request_bytes(&self) -> usize {
        self.max_request_bytes
    }

    /// `MAX_RESPONSE_BYTES`, for every generated server's `max_encoding_message_size`.
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }

    /// Makes the concurrency limit adaptive ([`OverloadLayer::adaptive`]), with `MAX_CONCURRENT_REQUESTS`
    /// as its ceiling; it never shrinks while the median latency is at most `tolerated`.
    #[must_use]
    pub fn with_adaptive_limit(mut self, tolerated: Duration) -> Self {
        self.overload = self.overload.to_adaptive(tolerated);
        self
    }

    /// The concurrency limit, shared by every builder of this server.
    pub fn overload(&self) -> &OverloadLayer {
        &self.overload
    }

    /// "plaintext", "TLS" or "mutual TLS", for the service's start-up log line.
    pub fn security(&self) -> &'static str {
        self.security
    }

    /// Serves `router` on `listener` (listening on it from now on if it was only bound: [`Listen`])
    /// until `shutdown` resolves, then shuts down as the module docs say: NOT_SERVING, drain delay, stop
    /// accepting, grace period. Returns `Ok` once drained or once the grace period is over; `Err` only if
    /// the address cannot be listened on or the server itself fails.
    pub async fn serve<L, ResBody>(
        &self,
        router: Router<L>,
        listener: impl Into<Listen>,
        shutdown: impl Future<Output = ()> + Send,
        health: &Health,
    ) -> Result<(), Error>
    where
        L: Layer<Routes>,
        L::Service: Service<http::Request<Body>, Response = http::Response<ResBody>> + Clone + Send + 'static,
        <L::Service as Service<http::Request<Body>>>::Future: Send,
        <L::Service as Service<http::Request<Body>>>::Error: Into<BoxError> + Send,
        ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        let listener = listener.into();
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let listener = listener.listen().map_err(|source| Error::Bind {
            setting: "LISTEN_ADDR",
            addr,
            source,
        })?;
        // Stops with this function, however it returns.
        let _health_listener = match self.health_addr {
            Some(addr) => Some(serve_health(addr, health).await?),
            None => None,
        };
        let (drain, grace) = (self.drain, self.grace);
        let overload = self.overload.clone();
        overload.report_limit();
        let health = health.clone();
        let (stopped_accepting, mut accepting_stopped) = oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            health.not_serving().await;
            tracing::info!(
                drain_ms = millis(drain),
                in_flight = overload.in_flight(),
                "shutting down: health NOT_SERVING, serving on through the drain delay"
            );
            tokio::time::sleep(drain).await;
            tracing::info!(
                in_flight = overload.in_flight(),
                grace_ms = millis(grace),
                "shutting down: no longer accepting, waiting for in-flight requests"
            );
            let _ = stopped_accepting.send(());
        };
        let serving = router.serve_with_incoming_shutdown(crate::incoming(listener), signal);
        let mut serving = std::pin::pin!(serving);
        tokio::select! {
            result = &mut serving => {
                result?;
                // With nothing in flight, tonic returns in the same poll that stops accepting.
                if accepting_stopped.try_recv().is_ok() {
                    tracing::info!("drained: every in-flight request finished");
                } else {
                    tracing::warn!("the server stopped before shutdown was requested");
                }
                return Ok(());
            }
            Ok(()) = &mut accepting_stopped => {}
        }
        match tokio::time::timeout(grace, serving).await {
            Ok(result) => {
                result?;
                tracing::info!("drained: every in-flight request finished");
            }
            Err(_) => tracing::warn!(
                in_flight = self.overload.in_flight(),
                grace_ms = millis(grace),
                "grace period over with requests in flight; stopping anyway"
            ),
        }
        Ok(())
    }
}

/// Serves `grpc.health.v1` alone, in plaintext, on `addr` until the returned sender is dropped.
async fn serve_health(addr: SocketAddr, health: &Health) -> Result<oneshot::Sender<()>, Error> {
    let listener = TcpListener::bind(addr).await.map_err(|source| Error::Bind {
        setting: "HEALTH_LISTEN_ADDR",
        addr,
        source,
    })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(health.server())
        .serve_with_incoming_shutdown(crate::incoming(listener), async {
            let _ = stopped.await;
        });
    tokio::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(error = %crate::error::chain(&error), "health listener failed");
        }
    });
    tracing::info!(%addr, "health listener (plaintext, grpc.health.v1 only)");
    Ok(stop)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
