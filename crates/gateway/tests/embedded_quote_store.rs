//! The embedded quote store (no `QUOTE_REDIS_URL`): bounded, so past its capacity it evicts the least
//! recently used quotes instead of refusing new ones, at a cost per call that does not grow with what it
//! holds; a quote lives for the quote TTL, and once its outcome is recorded for the outcome retention;
//! recording an outcome is atomic per quote (first New, same again Duplicate, different OutcomeConflict).

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::error::Error;
use gateway::quotes::{MEMORY_CAPACITY, Outcome, QuoteRecord, QuoteStore, Recorded};
use server_kit::Deadline;

fn quote(quote_id: &str) -> QuoteRecord {
    QuoteRecord {
        quote_id: quote_id.to_owned(),
        customer_id: "C000001".to_owned(),
        zone_id: "Z001".to_owned(),
        base_price: 10.0,
        price: 12.5,
        currency: "USD".to_owned(),
        risk_score: 0.2,
        risk_multiplier: 1.1,
        surge_factor: 1.2,
        risk_model_version: "1".to_owned(),
        surge_model_version: "1".to_owned(),
        experiment_variant: "control".to_owned(),
        risk_variant: "control".to_owned(),
        surge_variant: "control".to_owned(),
        created_at_ms: 1,
    }
}

fn deadline() -> Deadline {
    Deadline::after(Duration::from_secs(5))
}

const BOOKED: Outcome = Outcome {
    booked: true,
    revenue: 12.5,
    satisfaction: None,
    price_complaint: false,
};
const NOT_BOOKED: Outcome = Outcome {
    booked: false,
    revenue: 0.0,
    satisfaction: None,
    price_complaint: false,
};

/// Every QuotePrice and RecordOutcome awaits one of these inside its own future, whichever store is
/// configured: when they held the Redis client's command futures by value (several kilobytes, doubled by
/// each layer awaiting them), QuotePrice's future was about 22 KB, allocated and copied on every call.
#[test]
fn the_stores_futures_stay_small() {
    const MOST: usize = 1024;
    let store = QuoteStore::memory(Duration::from_secs(600), Duration::from_secs(3600));
    let quote = quote("q");
    let put = std::mem::size_of_val(&store.put(&quote, deadline()));
    let record = std::mem::size_of_val(&store.record_outcome("q", BOOKED, deadline()));
    assert!(put <= MOST, "QuoteStore::put's future is {put} bytes");
    assert!(
        record <= MOST,
        "QuoteStore::record_outcome's future is {record} bytes"
    );
}

#[tokio::test]
async fn past_its_capacity_the_store_keeps_accepting_quotes() {
    let store = QuoteStore::memory(Duration::from_secs(600), Duration::from_secs(3600));
    let total = MEMORY_CAPACITY + MEMORY_CAPACITY / 4;
    let started = Instant::now();
    for i in 0..total {
        if let Err(error) = store.put(&quote(&format!("q{i}")), deadline()).await {
            panic!("quote {i} of {total} refused: {error}");
        }
    }
    // A sweep of every entry on each put past capacity made this hours; a bounded cache is seconds even
    // unoptimised on a shared machine.
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(120),
        "{total} puts took {elapsed:?}"
    );
    // The newest quotes are the ones outcomes are about to arrive for: they must all be there.
    for i in total - 1_000..total {
        let recorded = store.record_outcome(&format!("q{i}"), BOOKED, deadline()).await;
        assert!(matches!(recorded, Ok(Recorded::New(_))), "q{i}: {recorded:?}");
    }
}

#[tokio::test]
async fn a_quote_lives_for_the_ttl_and_its_outcome_for_the_retention() {
    let store = QuoteStore::memory(Duration::from_millis(200), Duration::from_millis(1_500));
    store.put(&quote("unanswered"), deadline()).await.unwrap();
    store.put(&quote("answered"), deadline()).await.unwrap();
    let recorded = store.record_outcome("answered", BOOKED, deadline()).await;
    assert!(matches!(recorded, Ok(Recorded::New(_))), "{recorded:?}");
    let answered_at = Instant::now();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let expired = store.record_outcome("unanswered", BOOKED, deadline()).await;
    assert!(matches!(expired, Err(Error::QuoteNotFound(_))), "{expired:?}");
    // Past the quote TTL, the recorded outcome is still there to recognise a retry or a conflict.
    let retried = store.record_outcome("answered", BOOKED, deadline()).await;
    assert!(matches!(retried, Ok(Recorded::Duplicate(_))), "{retried:?}");
    let conflict = store.record_outcome("answered", NOT_BOOKED, deadline()).await;
    assert!(matches!(conflict, Err(Error::OutcomeConflict(_))), "{conflict:?}");

    tokio::time::sleep(Duration::from_millis(1_800).saturating_sub(answered_at.elapsed())).await;
    let gone = store.record_outcome("answered", BOOKED, deadline()).await;
    assert!(matches!(gone, Err(Error::QuoteNotFound(_))), "{gone:?}");
}

#[tokio::test]
async fn outcomes_are_recorded_as_before() {
    let store = QuoteStore::memory(Duration::from_secs(60), Duration::from_secs(60));
    let unknown = store.record_outcome("never-issued", BOOKED, deadline()).await;
    assert!(matches!(unknown, Err(Error::QuoteNotFound(_))), "{unknown:?}");

    let issued = quote("q1");
    store.put(&issued, deadline()).await.unwrap();
    match store.record_outcome("q1", BOOKED, deadline()).await {
        Ok(Recorded::New(joined)) => assert_eq!(*joined, issued),
        other => panic!("{other:?}"),
    }
    match store.record_outcome("q1", BOOKED, deadline()).await {
        Ok(Recorded::Duplicate(joined)) => assert_eq!(*joined, issued),
        other => panic!("{other:?}"),
    }
    let conflict = store.record_outcome("q1", NOT_BOOKED, deadline()).await;
    assert!(matches!(conflict, Err(Error::OutcomeConflict(_))), "{conflict:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_outcomes_for_one_quote_have_one_winner() {
    let store = Arc::new(QuoteStore::memory(
        Duration::from_secs(60),
        Duration::from_secs(60),
    ));
    for round in 0..50 {
        let id = format!("q{round}");
        store.put(&quote(&id), deadline()).await.unwrap();
        let attempts: Vec<_> = (0..8)
            .map(|i| {
                let (store, id) = (store.clone(), id.clone());
                let outcome = if i % 2 == 0 { BOOKED } else { NOT_BOOKED };
                tokio::spawn(async move { (outcome, store.record_outcome(&id, outcome, deadline()).await) })
            })
            .collect();
        let mut winners = Vec::new();
        let mut results = Vec::new();
        for attempt in attempts {
            let (outcome, recorded) = attempt.await.unwrap();
            if matches!(recorded, Ok(Recorded::New(_))) {
                winners.push(outcome);
            }
            results.push((outcome, recorded));
        }
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for (outcome, recorded) in results {
            match recorded {
                Ok(Recorded::New(_)) => {}
                Ok(Recorded::Duplicate(_)) => assert_eq!(outcome, winners[0], "round {round}"),
                Err(Error::OutcomeConflict(_)) => assert_ne!(outcome, winners[0], "round {round}"),
                other => panic!("round {round}: {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn a_booking_cannot_claim_more_than_five_times_its_quote() {
    let store = QuoteStore::memory(Duration::from_secs(60), Duration::from_secs(60));
    store.put(&quote("q1"), deadline()).await.expect("stored");
    let inflated = Outcome {
        booked: true,
        revenue: 62.51,
        satisfaction: None,
        price_complaint: false,
    };
    let error = store
        .record_outcome("q1", inflated, deadline())
        .await
        .expect_err("over five times the 12.5 quoted");
    assert_eq!(
        error.to_string(),
        "revenue: must be at most 5 times the quoted price (12.50 USD), got 62.51"
    );
    // Nothing was recorded: the most the quote allows is accepted as the first outcome.
    let at_most = Outcome {
        booked: true,
        revenue: 62.5,
        satisfaction: None,
        price_complaint: false,
    };
    let recorded = store
        .record_outcome("q1", at_most, deadline())
        .await
        .expect("recorded");
    assert!(matches!(recorded, Recorded::New(_)), "{recorded:?}");
}
