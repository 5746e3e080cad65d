//! The kit's Redis Cluster with replicas: it starts converged (every primary with its replica linked), says
//! which primary owns a key, and after a primary is killed, its replica takes the slots over — with what was
//! written before the kill — within a few seconds.

use std::time::{Duration, Instant};

use testkit::redis::{RedisCluster, Reply};

#[test]
fn a_killed_primary_is_replaced_by_its_replica() {
    let mut cluster = RedisCluster::with_replicas(3, 1).expect("Redis Cluster with replicas");
    assert_eq!(cluster.nodes().len(), 6);
    let primaries = cluster.primaries().expect("primaries");
    assert_eq!(primaries.len(), 3, "{:?}", cluster.view());
    let view = cluster.view().expect("CLUSTER NODES");
    for node in view.iter().filter(|n| n.primary) {
        assert!(
            view.iter().any(|r| r.primary_id.as_ref() == Some(&node.id)),
            "primary {} has no replica: {view:?}",
            node.port
        );
    }

    let key = "failover-key";
    let owner = cluster.primary_of(key.as_bytes()).expect("owner");
    assert!(primaries.contains(&owner));
    let reply = cluster.nodes()[owner]
        .command(&["SET", key, "kept"])
        .expect("SET");
    assert_eq!(reply, Reply::Status("OK".into()));
    cluster
        .wait_replicated(Duration::from_secs(5))
        .expect("replicated");

    let killed = Instant::now();
    cluster.kill(owner).expect("kill");
    let promoted = cluster
        .wait_for_failover(owner, Duration::from_secs(15))
        .expect("failover");
    let took = killed.elapsed();
    eprintln!("node {owner} lost; node {promoted} promoted after {took:?}");
    assert_ne!(promoted, owner);
    assert!(!primaries.contains(&promoted), "a replica took over");
    assert_eq!(cluster.primary_of(key.as_bytes()).expect("new owner"), promoted);
    let kept = cluster.nodes()[promoted].command(&["GET", key]).expect("GET");
    assert_eq!(kept, Reply::Bulk(Some(b"kept".to_vec())));
}
