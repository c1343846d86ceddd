//! Kubernetes Events about IAMRoles and AWSProviders, published in the background so that no
//! reconcile waits for one: a bounded queue drained by one task, a few Events in flight at once.
//! Events are best effort, as in Kubernetes' own clients: when the queue is full an Event is
//! dropped (and logged); a failure to publish is logged, never fatal. Talks to the Kubernetes API.

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use tokio::sync::mpsc;

/// How many Events are sent to the API server at once: enough to keep up with the reconciles,
/// few enough that a burst of failures (thousands of objects at once) queues small Events instead
/// of holding thousands of requests open.
const EVENTS_IN_FLIGHT: usize = 4;

/// How many Events may wait to be published before new ones are dropped.
const EVENTS_QUEUED: usize = 256;

/// Longest Event note Kubernetes accepts, in bytes.
const MAX_NOTE_BYTES: usize = 1024;

/// The queue of Events waiting to be published.
pub struct Events {
    queue: mpsc::Sender<(Event, ObjectReference)>,
}

impl Events {
    /// Starts the task that publishes queued Events through `recorder`; it ends once this queue
    /// is dropped and drained.
    pub fn start(recorder: Recorder) -> Self {
        let (queue, mut receiver) = mpsc::channel::<(Event, ObjectReference)>(EVENTS_QUEUED);
        let queued = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
        tokio::spawn(
            queued.for_each_concurrent(EVENTS_IN_FLIGHT, move |(event, regarding)| {
                let recorder = recorder.clone();
                async move {
                    if let Err(error) = recorder.publish(&event, &regarding).await {
                        tracing::warn!(%error, reason = %event.reason, "cannot publish an Event");
                    }
                }
            }),
        );
        Events { queue }
    }

    /// Queues an Event about `regarding`.
    pub fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate_note(note)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.queue.try_send((event, regarding.clone())) {
            tracing::warn!(reason, %error, "Event dropped");
        }
    }
}

fn truncate_note(mut note: String) -> String {
    if note.len() > MAX_NOTE_BYTES {
        let mut end = MAX_NOTE_BYTES - 3;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let note = "é".repeat(MAX_NOTE_BYTES);
        let cut = truncate_note(note);
        assert!(cut.len() <= MAX_NOTE_BYTES);
        assert!(cut.ends_with("..."));
        assert_eq!(truncate_note("short".to_owned()), "short");
    }
}
