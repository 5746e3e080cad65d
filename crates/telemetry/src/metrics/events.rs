//! DogStatsD events waiting for the flush thread: built (and their tags checked against the catalog)
//! on the caller's thread, sent by the flush thread. The queue is small and bounded: events mark rare
//! lifecycle moments, so a full queue means something emits them in a loop.

use std::sync::{Mutex, PoisonError};

use super::aggregator::push_sanitized;
use crate::{
    catalog::{EventDef, TagKey},
    tags::{DropReason, Tag},
};

/// Events that may wait for a flush at once.
const MAX_PENDING: usize = 64;
/// Longest title and text sent (the datagram limit is 1432 bytes over UDP).
const MAX_TITLE: usize = 100;
const MAX_TEXT: usize = 800;

/// An event's alert type, as Datadog shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventAlert {
    Info,
    Success,
    Warning,
    Error,
}

impl From<EventAlert> for dogstatsd::EventAlertType {
    fn from(alert: EventAlert) -> Self {
        match alert {
            EventAlert::Info => Self::Info,
            EventAlert::Success => Self::Success,
            EventAlert::Warning => Self::Warning,
            EventAlert::Error => Self::Error,
        }
    }
}

/// One event ready to send.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PendingEvent {
    pub name: &'static str,
    pub alert: EventAlert,
    pub title: String,
    pub text: String,
    /// `event:<name>,key:value,...` (the service tags are added by the client).
    pub tags: String,
}

impl PendingEvent {
    pub(crate) fn new(
        event: &'static EventDef,
        alert: EventAlert,
        title: &str,
        text: &str,
        tags: &[Tag<'_>],
    ) -> Result<Self, DropReason> {
        let mut joined = format!("{}:{}", TagKey::Event.as_str(), event.name);
        for tag in tags {
            if !event.tags.contains(&tag.key()) {
                debug_assert!(
                    false,
                    "tag {:?} is not allowed on event {}",
                    tag.key(),
                    event.name
                );
                return Err(DropReason::TagNotAllowed);
            }
            joined.push(',');
            joined.push_str(tag.key().as_str());
            joined.push(':');
            push_sanitized(&mut joined, tag.value());
        }
        Ok(Self {
            name: event.name,
            alert,
            title: one_line(title, MAX_TITLE),
            text: one_line(text, MAX_TEXT),
            tags: joined,
        })
    }
}

/// `text` cut to `max` characters, with line breaks and the `|` field separator replaced (the
/// datagram format has no escaping for them).
fn one_line(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if matches!(c, '\n' | '\r' | '|') { ' ' } else { c })
        .collect()
}

#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    pending: Mutex<Vec<PendingEvent>>,
}

impl EventQueue {
    pub(crate) fn push(&self, event: PendingEvent) -> Result<(), DropReason> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.len() >= MAX_PENDING {
            return Err(DropReason::QueueFull);
        }
        pending.push(event);
        Ok(())
    }

    pub(crate) fn take(&self) -> Vec<PendingEvent> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::MODEL_VERSION_LOADED;

    #[test]
    fn tags_are_checked_and_text_kept_on_one_line() {
        let event = PendingEvent::new(
            &MODEL_VERSION_LOADED,
            EventAlert::Info,
            "Model version loaded: crai 3",
            "line one\nline | two",
            &[Tag::model("crai"), Tag::model_version("3")],
        )
        .expect("allowed tags");
        assert_eq!(
            event.tags,
            "event:model_version_loaded,model:crai,model_version:3"
        );
        assert_eq!(event.text, "line one line   two");
    }

    #[test]
    fn the_queue_is_bounded() {
        let queue = EventQueue::default();
        let event = PendingEvent::new(&MODEL_VERSION_LOADED, EventAlert::Info, "t", "x", &[]).expect("ok");
        for _ in 0..MAX_PENDING {
            queue.push(event.clone()).expect("room");
        }
        assert_eq!(queue.push(event), Err(DropReason::QueueFull));
        assert_eq!(queue.take().len(), MAX_PENDING);
        assert!(queue.take().is_empty());
    }
}
