use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::*;

const LOOKUPS: usize = 16;

fn spec(version: &str) -> ModelSpec {
    ModelSpec::new(
        "crai".to_owned(),
        version.to_owned(),
        vec!["customer:tenure_days".to_owned()],
        HashMap::new(),
    )
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(10))
}

/// A fake model-service: counts the lookups that reached the catalog and the fetches actually
/// started, and holds each fetch until `gate` lets it through.
#[derive(Clone)]
struct Fake {
    lookups: Arc<AtomicUsize>,
    fetches: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
    version: &'static str,
    fails: bool,
}

impl Fake {
    fn new(version: &'static str) -> Self {
        Self {
            lookups: Arc::default(),
            fetches: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
            version,
            fails: false,
        }
    }

    fn fetch(&self) -> impl Future<Output = Result<ModelSpec, Error>> + Send + 'static {
        let this = self.clone();
        async move {
            this.fetches.fetch_add(1, Ordering::SeqCst);
            this.gate.acquire().await.expect("gate open").forget();
            if this.fails {
                Err(Error::DeadlineExceeded(MODEL_SERVICE))
            } else {
                Ok(spec(this.version))
            }
        }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Yields until all `count` lookups have run up to where they finish or wait (for the gate or for
    /// another's fetch): on the single-threaded test runtime a task counts itself and runs to its first
    /// wait in one poll.
    async fn until_looked_up(&self, count: usize) {
        while self.lookups.load(Ordering::SeqCst) < count {
            tokio::task::yield_now().await;
        }
    }
}

/// `LOOKUPS` concurrent lookups of `model`, each fetching from `fake`.
fn lookups(catalog: &Arc<Catalog>, model: &ModelRef, fake: &Fake) -> JoinSet<Result<Lookup, Error>> {
    let mut set = JoinSet::new();
    for _ in 0..LOOKUPS {
        let (catalog, model, fake) = (catalog.clone(), model.clone(), fake.clone());
        set.spawn(async move {
            fake.lookups.fetch_add(1, Ordering::SeqCst);
            catalog.get_or_fetch(&model, deadline(), fake.fetch()).await
        });
    }
    set
}

/// The lookups that have finished.
fn finished(set: &mut JoinSet<Result<Lookup, Error>>) -> Vec<Lookup> {
    std::iter::from_fn(|| set.try_join_next())
        .map(|lookup| lookup.expect("lookup panicked").expect("lookup failed"))
        .collect()
}

async fn seeded(ttl: Duration, model: &ModelRef) -> Arc<Catalog> {
    let catalog = Arc::new(Catalog::new(ttl));
    let seed = catalog
        .get_or_fetch(model, deadline(), async { Ok(spec("1")) })
        .await;
    assert!(matches!(seed, Ok(Lookup::Fetched(_))), "{seed:?}");
    catalog
}

#[tokio::test]
async fn concurrent_lookups_of_a_stale_spec_refresh_it_once() {
    let model = ModelRef::new("crai", "", "control");
    // A zero TTL makes the seeded spec stale at once.
    let catalog = seeded(Duration::ZERO, &model).await;
    let fake = Fake::new("2");
    let mut set = lookups(&catalog, &model, &fake);

    // While the one refresh is in flight, all the others have been answered, with the stale spec.
    fake.until_looked_up(LOOKUPS).await;
    let served = finished(&mut set);
    fake.gate.add_permits(LOOKUPS);
    while set.join_next().await.is_some() {}
    assert_eq!(
        fake.fetches(),
        1,
        "fetches for {LOOKUPS} concurrent lookups of a stale spec"
    );
    assert_eq!(served.len(), LOOKUPS - 1, "lookups answered during the refresh");
    for lookup in served {
        assert!(
            matches!(&lookup, Lookup::Cached(spec) if spec.version == "1"),
            "{lookup:?}"
        );
    }
    // The refresh landed.
    let Some((_, spec)) = catalog.slot(&model).current() else {
        panic!("no spec")
    };
    assert_eq!(spec.version, "2");
}

#[tokio::test]
async fn concurrent_first_lookups_wait_for_one_fetch() {
    let model = ModelRef::new("crai", "", "control");
    let catalog = Arc::new(Catalog::new(Duration::from_secs(30)));
    let fake = Fake::new("1");
    let mut set = lookups(&catalog, &model, &fake);
    // Every lookup reaches the catalog before the one fetch completes; none can be answered yet.
    fake.until_looked_up(LOOKUPS).await;
    assert!(finished(&mut set).is_empty(), "a lookup answered with no spec");
    fake.gate.add_permits(LOOKUPS);
    let mut answered = 0;
    while let Some(lookup) = set.join_next().await {
        let lookup = lookup.expect("lookup panicked").expect("lookup failed");
        assert!(
            matches!(&lookup, Lookup::Fetched(spec) if spec.version == "1"),
            "{lookup:?}"
        );
        answered += 1;
    }
    assert_eq!(answered, LOOKUPS);
    assert_eq!(
        fake.fetches(),
        1,
        "fetches for {LOOKUPS} concurrent first lookups"
    );
}

/// The next lookup of `model` fetches (version "3") and serves what it fetched.
async fn next_lookup_fetches(catalog: &Catalog, model: &ModelRef) {
    let working = Fake::new("3");
    working.gate.add_permits(1);
    let lookup = catalog.get_or_fetch(model, deadline(), working.fetch()).await;
    assert!(
        matches!(&lookup, Ok(Lookup::Fetched(spec)) if spec.version == "3"),
        "{lookup:?}"
    );
}

#[tokio::test]
async fn a_failed_refresh_serves_the_stale_spec_and_the_next_lookup_refreshes() {
    let model = ModelRef::new("crai", "", "control");
    let catalog = seeded(Duration::ZERO, &model).await;
    let mut failing = Fake::new("2");
    failing.fails = true;
    failing.gate.add_permits(1);
    let lookup = catalog.get_or_fetch(&model, deadline(), failing.fetch()).await;
    assert!(
        matches!(&lookup, Ok(Lookup::Stale { spec, .. }) if spec.version == "1"),
        "{lookup:?}"
    );
    next_lookup_fetches(&catalog, &model).await;
}

#[tokio::test]
async fn a_refresh_abandoned_by_its_caller_does_not_block_the_next() {
    let model = ModelRef::new("crai", "", "control");
    let catalog = seeded(Duration::ZERO, &model).await;
    let stuck = Fake::new("2");
    // The caller gives up while its refresh is still in flight.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(50),
        catalog.get_or_fetch(&model, deadline(), stuck.fetch()),
    )
    .await;
    assert!(abandoned.is_err());
    next_lookup_fetches(&catalog, &model).await;
}

#[tokio::test]
async fn a_fresh_spec_is_served_without_a_fetch() {
    let model = ModelRef::new("crai", "", "control");
    let catalog = seeded(Duration::from_secs(30), &model).await;
    let fake = Fake::new("2");
    let lookup = catalog.get_or_fetch(&model, deadline(), fake.fetch()).await;
    assert!(
        matches!(&lookup, Ok(Lookup::Cached(spec)) if spec.version == "1"),
        "{lookup:?}"
    );
    assert_eq!(fake.fetches(), 0);
}

#[tokio::test]
async fn a_first_lookup_waits_no_longer_than_its_deadline() {
    let model = ModelRef::new("crai", "", "control");
    let catalog = Arc::new(Catalog::new(Duration::from_secs(30)));
    let stuck = Fake::new("1");
    let first = {
        let (catalog, model, fetch) = (catalog.clone(), model.clone(), stuck.fetch());
        tokio::spawn(async move { catalog.get_or_fetch(&model, deadline(), fetch).await })
    };
    while stuck.fetches() == 0 {
        tokio::task::yield_now().await;
    }
    // A second lookup with a short deadline waits for that fetch, and gives up at its deadline.
    let second = Fake::new("1");
    second.gate.add_permits(1);
    let short = Deadline::after(Duration::from_millis(50));
    let waited = catalog.get_or_fetch(&model, short, second.fetch()).await;
    assert!(
        matches!(waited, Err(Error::DeadlineExceeded(MODEL_SERVICE))),
        "{waited:?}"
    );
    assert_eq!(second.fetches(), 0);
    first.abort();
}
