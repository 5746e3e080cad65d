//! [`ClusterNodes`]: how the feature store reads (and writes) a Redis Cluster — a pool per primary and the
//! slot map — so that a lost primary costs the keys in its slots and nothing else.
//!
//! Why not fred's cluster client: every command goes through one routing task per client, and when the
//! connection to one node breaks, that task reconnects the whole client. It asks `CLUSTER SLOTS`, which
//! names the lost primary until its replica is promoted, fails to connect to it, and tries again after its
//! backoff, serving no command meanwhile (fred 10.1: `router::utils::reconnect_with_policy` over
//! `router::clustered::sync`); while the cluster reports `cluster_state:fail`, a new connection also fails
//! fred's `CLUSTER INFO` check ("Invalid or missing cluster state"). So one lost primary made every key on
//! every node UNAVAILABLE, from its connection breaking until the client had reconnected, after the
//! promotion and the backoff. No fred setting changes that: reconnection is per client, not per node.
//!
//! Here each primary has a pool of its own (fred's standalone clients, with the connection's settings:
//! AUTH, TLS, timeouts, reconnecting in the background), and a key goes to the pool of the primary that
//! serves its slot ([`ClusterNodes::route`]). A pool that is not connected fails its keys at once; the
//! other pools do not notice. The slot map comes from `CLUSTER SLOTS`, asked of a connected primary (or,
//! when none is, of the URL's nodes in turn):
//! - at start, then every [`REFRESH_INTERVAL`];
//! - soon after a read found its primary not connected or failed on it (a broken connection, a timeout,
//!   a MOVED or ASK redirection while slots move), at most once per [`MIN_REFRESH_GAP`];
//! - every [`DEGRADED_REFRESH`] while some primary is not connected, so that a promoted replica is found
//!   within that of the cluster announcing it, and a pool is opened to it.
//!
//! A primary that leaves the map has its pool closed. Redirections are not followed: the keys of that read
//! are UNAVAILABLE and the refreshed map sends the next read to the right node. The first connection
//! ([`ClusterNodes::wait_connected`]) is the slot map plus a connection to every primary in it.
//!
//! What Redis itself refuses stays refused: between the lost primary being flagged FAIL and its replica's
//! promotion the cluster state is `fail`, and unless the servers run with `cluster-allow-reads-when-down
//! yes` every node answers CLUSTERDOWN (fred then reconnects that pool too), so the healthy primaries'
//! keys are UNAVAILABLE for that interval (about 1 s with a 1 s `cluster-node-timeout`).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fred::clients::{Client, Pool};
use fred::error::{Error as FredError, ErrorKind};
use fred::interfaces::{ClientLike, ClusterInterface};
use fred::types::Value;
use fred::types::cluster::ClusterRouting;
use fred::types::config::{Server, ServerConfig};
use futures::future::select_all;
use telemetry::logs::Throttle;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::connection::{ClientSettings, ConnectionState, FIRST_CONNECTION_RECHECK};
use crate::Error;

/// How often the slot map is asked for while every primary is connected (resharding, a replaced node).
const REFRESH_INTERVAL: Duration = Duration::from_secs(10);
/// How often it is asked for while some primary is not connected: how late a promotion may be noticed.
const DEGRADED_REFRESH: Duration = Duration::from_millis(250);
/// At most one refresh per this, however many reads ask for one.
const MIN_REFRESH_GAP: Duration = Duration::from_millis(100);

/// A pool per primary of a Redis Cluster and the slot map, kept up to date in the background. Dropping it
/// stops the background tasks and closes the pools.
pub(crate) struct ClusterNodes {
    shared: Arc<Shared>,
    tasks: Vec<AbortHandle>,
}

/// The keys of a read that go to one node (indices into the keys given to [`ClusterNodes::route`]), and a
/// connected client of it — or why there is none now (an IO error: the keys are UNAVAILABLE).
pub(crate) struct Route {
    pub keys: Vec<usize>,
    pub client: Result<Client, FredError>,
}

struct Shared {
    settings: ClientSettings,
    /// The URL's nodes: asked for the slot map when no primary is connected.
    seeds: Vec<Server>,
    topology: RwLock<Arc<Topology>>,
    /// Reads that failed ask for a refresh here.
    refresh: Notify,
    /// Told of every new slot map, for the first-connection watch.
    installed: Notify,
    state: Arc<ConnectionState>,
}

/// A slot map and the pools of the primaries in it.
struct Topology {
    slots: ClusterRouting,
    primaries: HashMap<Server, Arc<NodePool>>,
}

impl Topology {
    /// The slot map is known and every primary in it has a connected client.
    fn is_connected(&self) -> bool {
        !self.slots.slots().is_empty()
            && self
                .slots
                .unique_primary_nodes()
                .iter()
                .all(|server| self.primaries.get(server).is_some_and(|node| node.is_connected()))
    }
}

/// The pool of one primary; closed when the last slot map naming it is dropped.
struct NodePool {
    pool: Pool,
    /// The log tasks following the clients.
    tasks: Vec<AbortHandle>,
    /// fred's connection task of each client.
    connections: Vec<AbortHandle>,
    runtime: tokio::runtime::Handle,
}

impl NodePool {
    /// Starts connecting to `server` in the background.
    fn open(shared: &Shared, server: &Server) -> Result<Self, FredError> {
        let settings = &shared.settings;
        let mut fred = settings.fred.clone();
        fred.server = ServerConfig::Centralized {
            server: server.clone(),
        };
        let pool = settings.builder(fred).build_pool(settings.pool_size)?;
        let mut tasks = Vec::with_capacity(2 * pool.size());
        for client in pool.clients() {
            tasks.extend(shared.state.follow(&settings.runtime, client));
        }
        let connections = pool
            .clients()
            .iter()
            .map(|client| client.connect().abort_handle())
            .collect();
        Ok(Self {
            pool,
            tasks,
            connections,
            runtime: settings.runtime.clone(),
        })
    }

    fn client(&self) -> Option<Client> {
        let client = self.pool.next_connected();
        client.is_connected().then(|| client.clone())
    }

    fn is_connected(&self) -> bool {
        self.pool.clients().iter().any(ClientLike::is_connected)
    }
}

impl Drop for NodePool {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        // fred's connection tasks live (and reconnect) until told to quit. A client reconnecting to a node
        // that is gone does not read its QUIT (fred 10.1 handles commands only once connected), so what
        // has not quit by the command timeout is stopped.
        let pool = self.pool.clone();
        let connections = std::mem::take(&mut self.connections);
        self.runtime.spawn(async move {
            let _ = pool.quit().await;
            for connection in connections {
                connection.abort();
            }
        });
    }
}

impl ClusterNodes {
    /// Starts discovering the cluster from the URL's nodes and connecting to its primaries, in the
    /// background; returns at once.
    pub fn open(settings: ClientSettings) -> Self {
        let state = Arc::new(ConnectionState::new(settings.url.clone()));
        tracing::info!(
            redis.url = %state.url(),
            pool_size = settings.pool_size,
            tls = settings.uses_tls,
            "connecting to Redis Cluster"
        );
        let shared = Arc::new(Shared {
            seeds: settings.fred.server.hosts(),
            topology: RwLock::new(Arc::new(Topology {
                slots: ClusterRouting::new(),
                primaries: HashMap::new(),
            })),
            refresh: Notify::new(),
            installed: Notify::new(),
            state,
            settings,
        });
        let runtime = &shared.settings.runtime;
        let tasks = vec![
            runtime.spawn(keep_slot_map(shared.clone())).abort_handle(),
            runtime
                .spawn(watch_first_connection(shared.clone()))
                .abort_handle(),
        ];
        Self { shared, tasks }
    }

    /// Groups `keys` by the primary serving their slot, each group with a connected client of it. A group
    /// whose primary is not connected (or not known) gets an IO error at once, and a refresh of the slot
    /// map is asked for.
    pub fn route(&self, keys: &[Bytes]) -> Vec<Route> {
        let topology = self.shared.topology();
        // A handful of primaries: a linear search beats hashing the server names.
        let mut groups: Vec<(Option<&Server>, Vec<usize>)> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let owner = topology.slots.get_server(ClusterRouting::hash_key(key));
            match groups.iter_mut().find(|(server, _)| *server == owner) {
                Some((_, keys)) => keys.push(i),
                None => groups.push((owner, vec![i])),
            }
        }
        groups
            .into_iter()
            .map(|(server, keys)| Route {
                client: self.client_of(&topology, server),
                keys,
            })
            .collect()
    }

    /// A connected client of each primary of the slot map, or why there is none (an IO error, also when
    /// the slot map is not known yet).
    pub fn primary_clients(&self) -> Vec<Result<Client, FredError>> {
        let topology = self.shared.topology();
        let primaries = topology.slots.unique_primary_nodes();
        if primaries.is_empty() {
            return vec![self.client_of(&topology, None)];
        }
        primaries
            .iter()
            .map(|server| self.client_of(&topology, Some(server)))
            .collect()
    }

    fn client_of(&self, topology: &Topology, server: Option<&Server>) -> Result<Client, FredError> {
        let details = match server {
            Some(server) => match topology.primaries.get(server).map(|node| node.client()) {
                Some(Some(client)) => return Ok(client),
                Some(None) => format!("not connected to Redis Cluster primary {server} (reconnecting)"),
                None => format!("no connection to Redis Cluster primary {server} yet"),
            },
            None if topology.slots.slots().is_empty() => "the Redis Cluster slot map is not known yet".into(),
            None => "no Redis Cluster primary serves the key's slot".into(),
        };
        self.refresh_soon();
        Err(FredError::new(ErrorKind::IO, details))
    }

    /// Asks for the slot map to be refreshed soon (a read on a primary failed: it may have been replaced).
    pub fn refresh_soon(&self) {
        self.shared.refresh.notify_one();
    }

    /// Whether the slot map is known and every primary in it connected now.
    pub fn is_connected(&self) -> bool {
        self.shared.topology().is_connected()
    }

    /// Resolves once the slot map was known and every primary in it connected.
    pub async fn wait_connected(&self) {
        self.shared.state.wait_connected().await;
    }

    /// [`ClusterNodes::wait_connected`], or after `timeout` an [`Error::Connect`] naming the last error.
    pub async fn connected_within(&self, timeout: Duration) -> Result<(), Error> {
        self.shared.state.connected_within(timeout).await
    }

    /// The URL with its password redacted.
    pub fn url(&self) -> &str {
        self.shared.state.url()
    }

    /// The limiter of the failure lines, for failed commands to share.
    pub fn log(&self) -> &Throttle {
        self.shared.state.log()
    }
}

impl Drop for ClusterNodes {
    fn drop(&mut self) {
        // The pools close when the tasks, the last holders of the slot map besides `self`, are gone.
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Shared {
    fn topology(&self) -> Arc<Topology> {
        self.topology
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `CLUSTER SLOTS` of a connected primary, else of the URL's nodes in turn.
    async fn discover(&self) -> Result<ClusterRouting, FredError> {
        let mut last_error = None;
        let topology = self.topology();
        for (server, node) in &topology.primaries {
            let Some(client) = node.client() else {
                continue;
            };
            match self.slots_from(&client, server).await {
                Ok(slots) => return Ok(slots),
                Err(error) => last_error = Some(error),
            }
        }
        for seed in &self.seeds {
            match self.ask_seed(seed).await {
                Ok(slots) => return Ok(slots),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            FredError::new(
                ErrorKind::Cluster,
                "no Redis Cluster node to ask for the slot map",
            )
        }))
    }

    async fn slots_from(&self, client: &Client, server: &Server) -> Result<ClusterRouting, FredError> {
        let timeout = self.settings.connect_timeout();
        let value: Value = tokio::time::timeout(timeout, client.cluster_slots())
            .await
            .map_err(|_| {
                FredError::new(
                    ErrorKind::Timeout,
                    format!("CLUSTER SLOTS: no answer from {server} within {timeout:?}"),
                )
            })??;
        let slots = ClusterRouting::from_cluster_slots(value, server.host.clone())?;
        if slots.slots().is_empty() {
            return Err(FredError::new(
                ErrorKind::Cluster,
                format!("CLUSTER SLOTS of {server}: no slot is assigned"),
            ));
        }
        Ok(slots)
    }

    /// Asks `seed` for the slot map on a connection of its own, closed afterwards.
    async fn ask_seed(&self, seed: &Server) -> Result<ClusterRouting, FredError> {
        let mut fred = self.settings.fred.clone();
        fred.server = ServerConfig::Centralized { server: seed.clone() };
        // One attempt: the refresh loop is the retry.
        fred.fail_fast = true;
        let client = self.settings.builder(fred).build()?;
        let timeout = self.settings.connect_timeout();
        let result = match tokio::time::timeout(timeout, client.init()).await {
            Ok(Ok(_)) => self.slots_from(&client, seed).await,
            Ok(Err(error)) => Err(error),
            Err(_) => Err(FredError::new(
                ErrorKind::Timeout,
                format!("no connection to {seed} within {timeout:?}"),
            )),
        };
        self.settings.runtime.spawn(async move {
            let _ = tokio::time::timeout(timeout, client.quit()).await;
        });
        result
    }

    /// Makes `slots` the slot map: the pools of primaries still in it are kept, new primaries get one,
    /// the others are closed (once no read holds the old map).
    fn install(&self, slots: ClusterRouting) {
        let current = self.topology();
        let primaries = slots.unique_primary_nodes();
        let unchanged = current.slots.slots() == slots.slots()
            && primaries
                .iter()
                .all(|server| current.primaries.contains_key(server));
        if unchanged {
            return;
        }
        let mut pools = HashMap::with_capacity(primaries.len());
        for server in &primaries {
            let pool = match current.primaries.get(server) {
                Some(pool) => pool.clone(),
                None => match NodePool::open(self, server) {
                    Ok(pool) => Arc::new(pool),
                    Err(error) => {
                        self.state.connection_failed(&error, Some(&server.to_string()));
                        continue;
                    }
                },
            };
            pools.insert(server.clone(), pool);
        }
        let names: Vec<String> = primaries.iter().map(ToString::to_string).collect();
        tracing::info!(
            redis.url = %self.state.url(),
            redis.primaries = %names.join(","),
            slot_ranges = slots.len(),
            "Redis Cluster slot map changed"
        );
        *self.topology.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Topology {
            slots,
            primaries: pools,
        });
        self.installed.notify_waiters();
    }
}

/// Refreshes the slot map: at once, then as the module documentation says.
async fn keep_slot_map(shared: Arc<Shared>) {
    loop {
        let started = Instant::now();
        match shared.discover().await {
            Ok(slots) => shared.install(slots),
            Err(error) => shared.state.connection_failed(&error, None),
        }
        let wait = if shared.topology().is_connected() {
            REFRESH_INTERVAL
        } else {
            DEGRADED_REFRESH
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.refresh.notified() => {}
        }
        tokio::time::sleep_until((started + MIN_REFRESH_GAP).into()).await;
    }
}

/// Marks the state connected once the slot map is known and every primary in it connected, then ends.
async fn watch_first_connection(shared: Arc<Shared>) {
    loop {
        let installed = shared.installed.notified();
        tokio::pin!(installed);
        installed.as_mut().enable();
        let topology = shared.topology();
        if topology.is_connected() {
            shared.state.mark_connected();
            return;
        }
        // fred announces each connection; the recheck covers one made between the look above and the
        // subscription `wait_for_connect` makes.
        let waits: Vec<_> = topology
            .primaries
            .values()
            .flat_map(|node| node.pool.clients())
            .filter(|client| !client.is_connected())
            .map(|client| Box::pin(client.wait_for_connect()))
            .collect();
        let connected = async {
            if waits.is_empty() {
                std::future::pending::<()>().await;
            }
            if let (Err(_), _, _) = select_all(waits).await {
                // An announcement channel that closed or lagged answers at once: do not spin on it.
                tokio::time::sleep(FIRST_CONNECTION_RECHECK).await;
            }
        };
        tokio::select! {
            () = installed => {}
            () = connected => {}
            () = tokio::time::sleep(FIRST_CONNECTION_RECHECK) => {}
        }
    }
}
