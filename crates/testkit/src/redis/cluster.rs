//! [`RedisCluster`]: a Redis Cluster on loopback — primaries, each with its replicas if asked — and what
//! failover tests need: which primary owns a key's slot ([`RedisCluster::primary_of`]), killing a node
//! ([`RedisCluster::kill`]), waiting until the replicas hold what their primaries hold
//! ([`RedisCluster::wait_replicated`]) and until a lost primary's replica took its slots over
//! ([`RedisCluster::wait_for_failover`]).
//!
//! Every wait polls the nodes' own views (`CLUSTER INFO`, `CLUSTER NODES`, `INFO replication`) until they
//! say what is waited for: gossip spreads a change over a moment, and only the nodes know when it is done.

use std::io;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{RedisOptions, RedisServer, Reply, START_ATTEMPTS};

/// How often the waits look at the nodes again.
const POLL: Duration = Duration::from_millis(20);
/// How long a new cluster may take to agree on its topology (and its replicas to sync).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of a [`RedisCluster`].
#[derive(Debug, Clone)]
pub struct RedisClusterOptions {
    /// Primaries, at least 3 (as `redis-cli --cluster create` requires); the slots are split between them.
    pub primaries: usize,
    /// Replicas of each primary.
    pub replicas_per_primary: usize,
    /// `cluster-node-timeout`: how long a node may not answer before the others count it as failing. A
    /// failover takes about this long plus the replica's election delay (0.5-1 s in Redis 7).
    pub node_timeout: Duration,
    /// More `redis-server` arguments for every node, e.g. `["--cluster-allow-reads-when-down", "yes"]`.
    pub args: Vec<String>,
}

impl RedisClusterOptions {
    /// `primaries` primaries without replicas, with Redis's default node timeout (nothing fails over).
    pub fn primaries(primaries: usize) -> Self {
        Self {
            primaries,
            replicas_per_primary: 0,
            node_timeout: Duration::from_secs(5),
            args: Vec::new(),
        }
    }

    /// `primaries` primaries with `replicas_per_primary` replicas each, and a node timeout of 1 s so that a
    /// lost primary is replaced within about 2 s (Redis's default of 15 s would make it 16).
    pub fn with_replicas(primaries: usize, replicas_per_primary: usize) -> Self {
        Self {
            primaries,
            replicas_per_primary,
            node_timeout: Duration::from_secs(1),
            args: Vec::new(),
        }
    }
}

/// A Redis Cluster on loopback, every slot assigned; its nodes are killed when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// Per node: killed by [`RedisCluster::kill`].
    killed: Vec<bool>,
    /// The slot ranges each killed node owned when it was killed, for [`RedisCluster::wait_for_failover`].
    lost_slots: Vec<Vec<(u16, u16)>>,
    options: RedisClusterOptions,
}

/// One line of `CLUSTER NODES`, as much as tests need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: String,
    pub port: u16,
    /// Flagged `master` (a primary; one without slots serves nothing).
    pub primary: bool,
    /// Flagged `fail` or `fail?` by the node whose view this is.
    pub failing: bool,
    /// The id of its primary, for a replica.
    pub primary_id: Option<String>,
    /// The slot ranges it serves (inclusive).
    pub slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// Starts `primaries` primaries without replicas (see [`RedisCluster::start_with`]).
    pub fn start(primaries: usize) -> io::Result<Self> {
        Self::start_with(RedisClusterOptions::primaries(primaries))
    }

    /// Starts `primaries` primaries with `replicas_per_primary` replicas each, failing over within about
    /// 2 s (see [`RedisClusterOptions::with_replicas`]).
    pub fn with_replicas(primaries: usize, replicas_per_primary: usize) -> io::Result<Self> {
        Self::start_with(RedisClusterOptions::with_replicas(
            primaries,
            replicas_per_primary,
        ))
    }

    /// Starts the cluster-mode servers, joins them with `redis-cli --cluster create ... --cluster-replicas
    /// N`, and waits until it converged: every node knows every other and reports `cluster_state:ok`, and
    /// every replica is linked to its primary.
    pub fn start_with(options: RedisClusterOptions) -> io::Result<Self> {
        if options.primaries < 3 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a Redis Cluster needs 3 primaries or more",
            ));
        }
        let count = options.primaries * (1 + options.replicas_per_primary);
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            nodes.push(start_cluster_node(&options)?);
        }
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args([
                "--cluster-replicas",
                &options.replicas_per_primary.to_string(),
                "--cluster-yes",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|error| io::Error::new(error.kind(), format!("cannot run redis-cli: {error}")))?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&output.stdout)
            )));
        }
        let cluster = Self {
            killed: vec![false; nodes.len()],
            lost_slots: vec![Vec::new(); nodes.len()],
            nodes,
            options,
        };
        cluster.wait_converged()?;
        Ok(cluster)
    }

    /// Gossip takes a moment to spread the new topology, and replicas a moment to sync: poll each node's
    /// own view until all agree.
    fn wait_converged(&self) -> io::Result<()> {
        let replicas = self.options.primaries * self.options.replicas_per_primary;
        poll(CONVERGE_TIMEOUT, "the Redis Cluster did not converge", || {
            let known = format!("cluster_known_nodes:{}", self.nodes.len());
            for node in &self.nodes {
                let info = node.command(&["CLUSTER", "INFO"])?.into_text()?;
                if !(info.contains("cluster_state:ok") && info.contains(&known)) {
                    return Ok(None);
                }
                let view = cluster_nodes(node)?;
                let linked = view
                    .iter()
                    .filter(|n| !n.primary && !n.failing && n.primary_id.is_some())
                    .count();
                if linked != replicas {
                    return Ok(None);
                }
            }
            for node in &self.nodes {
                let info = node.command(&["INFO", "replication"])?.into_text()?;
                if info.contains("role:slave") && !info.contains("master_link_status:up") {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
    }

    /// `redis-cluster://127.0.0.1:<p1>?node=127.0.0.1:<p2>&node=...`: fred's cluster URL form, every node.
    pub fn url(&self) -> String {
        let mut url = String::from("redis-cluster://");
        for (i, node) in self.nodes.iter().enumerate() {
            match i {
                0 => url.push_str(&format!("127.0.0.1:{}", node.port)),
                1 => url.push_str(&format!("?node=127.0.0.1:{}", node.port)),
                _ => url.push_str(&format!("&node=127.0.0.1:{}", node.port)),
            }
        }
        url
    }

    /// Every node, primaries and replicas, killed ones included (see [`RedisCluster::is_killed`]).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Whether node `index` was killed.
    pub fn is_killed(&self, index: usize) -> bool {
        self.killed.get(index).copied().unwrap_or(false)
    }

    /// `CLUSTER NODES` as a live node sees the cluster.
    pub fn view(&self) -> io::Result<Vec<ClusterNode>> {
        cluster_nodes(self.live_node()?)
    }

    /// The indices (into [`RedisCluster::nodes`]) of the primaries serving slots now.
    pub fn primaries(&self) -> io::Result<Vec<usize>> {
        let view = self.view()?;
        Ok(view
            .iter()
            .filter(|n| n.primary && !n.slots.is_empty())
            .filter_map(|n| self.index_of(n.port))
            .collect())
    }

    /// The index of the primary that serves `key`'s slot now (`CLUSTER KEYSLOT`, then `CLUSTER NODES`).
    pub fn primary_of(&self, key: &[u8]) -> io::Result<usize> {
        let node = self.live_node()?;
        let slot = match node.command_bytes(&[b"CLUSTER", b"KEYSLOT", key])? {
            Reply::Integer(slot) => u16::try_from(slot).map_err(io::Error::other)?,
            other => return Err(io::Error::other(format!("CLUSTER KEYSLOT answered {other:?}"))),
        };
        cluster_nodes(node)?
            .iter()
            .find(|n| n.primary && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
            .and_then(|n| self.index_of(n.port))
            .ok_or_else(|| io::Error::other(format!("no node serves slot {slot}")))
    }

    /// Kills node `index` with SIGKILL, as a crash or a lost host would: no goodbye to the cluster. Its
    /// slots are remembered for [`RedisCluster::wait_for_failover`].
    pub fn kill(&mut self, index: usize) -> io::Result<()> {
        let port = self.node(index)?.port;
        let view = self.view()?;
        self.lost_slots[index] = view
            .iter()
            .find(|n| n.port == port)
            .map(|n| n.slots.clone())
            .unwrap_or_default();
        self.nodes[index].kill();
        self.killed[index] = true;
        Ok(())
    }

    /// Waits until every live node reports `cluster_state:ok` and sees the slots killed node `lost` served
    /// owned by one live primary (its promoted replica); returns that primary's index.
    pub fn wait_for_failover(&self, lost: usize, within: Duration) -> io::Result<usize> {
        let slots = self.lost_slots.get(lost).cloned().unwrap_or_default();
        let Some(&(first, _)) = slots.first() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("node {lost} was not killed while serving slots"),
            ));
        };
        poll(within, "the lost primary's slots were not taken over", || {
            let mut owner = None;
            for (_, node) in self.live_nodes() {
                let info = node.command(&["CLUSTER", "INFO"])?.into_text()?;
                if !info.contains("cluster_state:ok") {
                    return Ok(None);
                }
                let view = cluster_nodes(node)?;
                let Some(serving) = view
                    .iter()
                    .find(|n| {
                        n.primary && !n.failing && n.slots.iter().any(|&(a, b)| a <= first && first <= b)
                    })
                    .and_then(|n| self.index_of(n.port))
                else {
                    return Ok(None);
                };
                if serving == lost || self.is_killed(serving) || owner.is_some_and(|o| o != serving) {
                    return Ok(None);
                }
                owner = Some(serving);
            }
            Ok(owner)
        })
    }

    /// Waits until every live replica has processed all that its primary has written (its
    /// `slave_repl_offset` reached the primary's `master_repl_offset`): what a test wrote before killing a
    /// primary is then on the replica that will replace it.
    pub fn wait_replicated(&self, within: Duration) -> io::Result<()> {
        poll(within, "the replicas did not catch up", || {
            for (_, node) in self.live_nodes() {
                let info = node.command(&["INFO", "replication"])?.into_text()?;
                if !info.contains("role:slave") {
                    continue;
                }
                let Some(primary) = field(&info, "master_port")
                    .and_then(|p| p.parse::<u16>().ok())
                    .and_then(|p| self.index_of(p))
                else {
                    return Ok(None);
                };
                let primary = self.nodes[primary]
                    .command(&["INFO", "replication"])?
                    .into_text()?;
                if field(&info, "master_link_status") != Some("up")
                    || field(&info, "slave_repl_offset") != field(&primary, "master_repl_offset")
                {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
    }

    fn node(&self, index: usize) -> io::Result<&RedisServer> {
        self.nodes.get(index).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the cluster has {} nodes, not {}", self.nodes.len(), index + 1),
            )
        })
    }

    fn live_nodes(&self) -> impl Iterator<Item = (usize, &RedisServer)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|&(index, _)| !self.is_killed(index))
    }

    fn live_node(&self) -> io::Result<&RedisServer> {
        self.live_nodes()
            .map(|(_, node)| node)
            .next()
            .ok_or_else(|| io::Error::other("every node of the cluster was killed"))
    }

    fn index_of(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.port == port)
    }
}

fn start_cluster_node(options: &RedisClusterOptions) -> io::Result<RedisServer> {
    let mut last_error = None;
    for _ in 0..START_ATTEMPTS {
        // The cluster bus defaults to port + 10000, which can overflow or collide for ephemeral ports: give
        // it a free port of its own.
        let bus = crate::free_port();
        let node_timeout = options.node_timeout.as_millis().to_string();
        let extra: Vec<String> = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            &node_timeout,
            "--cluster-port",
            &bus.to_string(),
            // Replicas sync at once instead of after the default 5 s wait for more replicas.
            "--repl-diskless-sync-delay",
            "0",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain(options.args.iter().cloned())
        .collect();
        match RedisServer::try_start(&RedisOptions::default(), &extra) {
            Ok(server) => return Ok(server),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::other("cluster node did not start")))
}

/// `CLUSTER NODES` of `node`, parsed.
fn cluster_nodes(node: &RedisServer) -> io::Result<Vec<ClusterNode>> {
    let text = node.command(&["CLUSTER", "NODES"])?.into_text()?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(parse_cluster_node)
        .collect()
}

/// `<id> <ip:port@cport[,hostname]> <flags> <primary> <ping-sent> <pong-recv> <epoch> <link> <slot>...`
fn parse_cluster_node(line: &str) -> io::Result<ClusterNode> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("CLUSTER NODES line {line:?}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 8 {
        return Err(bad());
    }
    let port = fields[1]
        .split('@')
        .next()
        .and_then(|addr| addr.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .ok_or_else(bad)?;
    let flags: Vec<&str> = fields[2].split(',').collect();
    let mut slots = Vec::new();
    // Importing and migrating slots (`[slot-<-id]`) are listed too: they are not served yet.
    for range in fields[8..].iter().filter(|s| !s.starts_with('[')) {
        let (start, end) = range.split_once('-').unwrap_or((range, range));
        slots.push((start.parse().map_err(|_| bad())?, end.parse().map_err(|_| bad())?));
    }
    Ok(ClusterNode {
        id: fields[0].to_owned(),
        port,
        primary: flags.contains(&"master"),
        failing: flags.contains(&"fail") || flags.contains(&"fail?"),
        primary_id: (fields[3] != "-").then(|| fields[3].to_owned()),
        slots,
    })
}

/// The value of `name:value` in an `INFO` answer.
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Calls `check` every [`POLL`] until it returns a value, or fails with `what` after `within`.
fn poll<T>(within: Duration, what: &str, mut check: impl FnMut() -> io::Result<Option<T>>) -> io::Result<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what} within {within:?}"),
            ));
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lines_are_parsed() {
        let primary = parse_cluster_node(
            "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,hostname4 myself,master - 0 \
             1426238317239 4 connected 0-5460 5462 [5463->-e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca]",
        )
        .expect("primary");
        assert_eq!(primary.port, 30004);
        assert!(primary.primary && !primary.failing);
        assert_eq!(primary.primary_id, None);
        assert_eq!(primary.slots, vec![(0, 5460), (5462, 5462)]);

        let replica = parse_cluster_node(
            "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 slave,fail? \
             07c37dfeb235213a872192d90877d0cd55635b91 0 1426238316232 2 connected",
        )
        .expect("replica");
        assert!(!replica.primary && replica.failing);
        assert_eq!(
            replica.primary_id.as_deref(),
            Some("07c37dfeb235213a872192d90877d0cd55635b91")
        );
        assert!(replica.slots.is_empty());
        assert!(parse_cluster_node("garbage").is_err());
    }
}
