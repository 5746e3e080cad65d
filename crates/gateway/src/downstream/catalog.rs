//! The model catalog: what each model takes as input, as the model-service describes it, cached, and
//! refreshed by one request at a time per model ([`Catalog::get_or_fetch`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use proto::models::v1::GetModelMetadataResponse;
use server_kit::Deadline;

use super::MODEL_SERVICE;
use crate::error::Error;

/// What the gateway needs to know of a model version to build its input rows.
#[derive(Debug)]
pub struct ModelSpec {
    pub model: String,
    pub version: String,
    /// Inputs fetched from the feature-service ("view:feature"), in the model's order.
    pub feature_refs: Vec<String>,
    /// Inputs the gateway derives from the request itself (e.g. "hour_of_day").
    pub request_inputs: Vec<String>,
}

impl From<GetModelMetadataResponse> for ModelSpec {
    fn from(metadata: GetModelMetadataResponse) -> Self {
        let (feature_refs, request_inputs) = metadata
            .inputs
            .into_iter()
            .map(|input| input.name)
            .partition(|name| name.contains(':'));
        Self {
            model: metadata.model,
            version: metadata.version,
            feature_refs,
            request_inputs,
        }
    }
}

/// A model as configured on the gateway: its name, pinned version (empty: the default version) and the
/// experiment arm its predictions are reported under.
#[derive(Debug, Clone)]
pub struct ModelRef {
    pub name: String,
    pub version: String,
    pub variant: String,
    /// `name@version`, the catalog's key, built once rather than on every request.
    key: String,
}

impl ModelRef {
    pub fn new(name: &str, version: &str, variant: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            variant: variant.to_owned(),
            key: format!("{name}@{version}"),
        }
    }
}

/// Model specs by model reference, each with when it was fetched, and refreshed one fetch at a time per
/// model: while one request refreshes a stale spec the others serve the stale one, and a model with no
/// spec yet is fetched once for all the requests that arrive while that fetch is in flight.
pub struct Catalog {
    models: RwLock<HashMap<String, Arc<Slot>>>,
    ttl: Duration,
}

/// One model's spec and the right to fetch it.
#[derive(Default)]
struct Slot {
    spec: RwLock<Option<(Instant, Arc<ModelSpec>)>>,
    /// Held for the length of a fetch. A request whose future is dropped mid-fetch (its caller went away)
    /// releases it with the future, so a cancelled refresh never blocks the next one.
    fetching: tokio::sync::Mutex<()>,
}

/// How a catalog lookup was answered.
#[derive(Debug)]
pub enum Lookup {
    /// From the catalog without a fetch: fresh, or stale while another request refreshes it.
    Cached(Arc<ModelSpec>),
    /// Fetched from the model-service, by this request or by the one it waited for.
    Fetched(Arc<ModelSpec>),
    /// This request's refresh failed: the stale spec is served rather than failing the request.
    Stale { spec: Arc<ModelSpec>, error: Error },
}

impl Catalog {
    pub fn new(ttl: Duration) -> Self {
        Self {
            models: RwLock::default(),
            ttl,
        }
    }

    /// The model's spec, fetched with `fetch` (not polled unless this request is the one to fetch) when
    /// the catalog's is missing or stale.
    ///
    /// With no spec at all, requests wait (until `deadline`) for the fetch in flight rather than each
    /// starting one. If that fetch fails, the next waiter fetches in turn, within its own deadline: the
    /// failed one may have been bounded by a shorter deadline than the waiters', so its error is not
    /// handed on (and while the model-service is down its breaker makes each turn fail fast).
    pub async fn get_or_fetch(
        &self,
        model: &ModelRef,
        deadline: Deadline,
        fetch: impl Future<Output = Result<ModelSpec, Error>>,
    ) -> Result<Lookup, Error> {
        let slot = self.slot(model);
        if let Some((fetched, spec)) = slot.current() {
            if fetched.elapsed() < self.ttl {
                return Ok(Lookup::Cached(spec));
            }
            // Stale: refresh it unless another request already is, and serve it meanwhile.
            let Ok(_fetching) = slot.fetching.try_lock() else {
                return Ok(Lookup::Cached(spec));
            };
            // A refresh may have completed between the read and the lock.
            if let Some((fetched, spec)) = slot.current()
                && fetched.elapsed() < self.ttl
            {
                return Ok(Lookup::Cached(spec));
            }
            return Ok(match fetch.await {
                Ok(fetched) => Lookup::Fetched(slot.store(fetched)),
                Err(error) => Lookup::Stale { spec, error },
            });
        }
        let _fetching = tokio::time::timeout(deadline.remaining(), slot.fetching.lock())
            .await
            .map_err(|_| Error::DeadlineExceeded(MODEL_SERVICE))?;
        // The fetch this request waited for succeeded.
        if let Some((_, spec)) = slot.current() {
            return Ok(Lookup::Fetched(spec));
        }
        Ok(Lookup::Fetched(slot.store(fetch.await?)))
    }

    fn slot(&self, model: &ModelRef) -> Arc<Slot> {
        if let Some(slot) = read(&self.models).get(&model.key) {
            return slot.clone();
        }
        // Keys are the gateway's configured models, never request input: this map stays small.
        write(&self.models).entry(model.key.clone()).or_default().clone()
    }
}

impl Slot {
    fn current(&self) -> Option<(Instant, Arc<ModelSpec>)> {
        read(&self.spec).clone()
    }

    fn store(&self, spec: ModelSpec) -> Arc<ModelSpec> {
        let spec = Arc::new(spec);
        *write(&self.spec) = Some((Instant::now(), spec.clone()));
        spec
    }
}

// Every write under these locks is one whole-value assignment or insert, so a lock poisoned by a panic
// elsewhere still guards a consistent value.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Semaphore;
    use tokio::task::JoinSet;

    use super::*;

    const LOOKUPS: usize = 16;

    fn spec(version: &str) -> ModelSpec {
        ModelSpec {
            model: "crai".to_owned(),
            version: version.to_owned(),
            feature_refs: vec!["customer:tenure_days".to_owned()],
            request_inputs: Vec::new(),
        }
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
        let working = Fake::new("3");
        working.gate.add_permits(1);
        let lookup = catalog.get_or_fetch(&model, deadline(), working.fetch()).await;
        assert!(
            matches!(&lookup, Ok(Lookup::Fetched(spec)) if spec.version == "3"),
            "{lookup:?}"
        );
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
        let working = Fake::new("3");
        working.gate.add_permits(1);
        let lookup = catalog.get_or_fetch(&model, deadline(), working.fetch()).await;
        assert!(
            matches!(&lookup, Ok(Lookup::Fetched(spec)) if spec.version == "3"),
            "{lookup:?}"
        );
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
}
