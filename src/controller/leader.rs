//! Leader election with a `coordination.k8s.io/v1` Lease: every replica serves the webhook, only the
//! holder of the Lease reconciles. Talks to the Kubernetes API.
//!
//! The holder renews the Lease every `renew_every`; a replica takes it over once it has not been
//! renewed for `lease_duration`. Updates carry the Lease's resourceVersion, so two replicas racing for
//! an expired Lease cannot both win. On shutdown the holder releases the Lease for a fast handover.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::serve::Shutdown;

/// Where the Lease lives and how it is held.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (e.g. the pod name), written as the holder.
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews, and others retry.
    pub renew_every: Duration,
}

/// The outcome of one attempt to acquire or renew.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// This replica holds the Lease.
    Leader,
    /// Another replica holds a valid Lease.
    Follower,
}

/// Decides, from the Lease as read, whether this replica may take or keep it. Pure.
pub fn may_hold(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == identity {
        return true;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    match &spec.renew_time {
        Some(MicroTime(renewed)) => renewed
            .checked_add(duration)
            .map(|expiry| expiry < now)
            .unwrap_or(true),
        None => true,
    }
}

fn lease_spec(settings: &LeaseSettings, previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
    let kept =
        previous.filter(|p| p.holder_identity.as_deref() == Some(settings.identity.as_str()));
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(settings.identity.clone()),
        lease_duration_seconds: Some(
            i32::try_from(settings.lease_duration.as_secs()).unwrap_or(i32::MAX),
        ),
        acquire_time: Some(
            kept.and_then(|p| p.acquire_time.clone())
                .unwrap_or(MicroTime(now)),
        ),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if kept.is_some() {
            transitions
        } else {
            transitions + 1
        }),
        ..LeaseSpec::default()
    }
}

/// Tries once to acquire or renew the Lease.
pub async fn try_acquire(
    api: &Api<Lease>,
    settings: &LeaseSettings,
) -> Result<Attempt, kube::Error> {
    let now = Timestamp::now();
    match api.get_opt(&settings.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(settings.name.clone()),
                    namespace: Some(settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(lease_spec(settings, None, now)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leader),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Follower),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            if !may_hold(lease.spec.as_ref(), &settings.identity, now) {
                return Ok(Attempt::Follower);
            }
            lease.spec = Some(lease_spec(settings, lease.spec.as_ref(), now));
            // The resourceVersion read above makes this a compare-and-swap.
            match api
                .replace(&settings.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => Ok(Attempt::Leader),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Follower),
                Err(e) => Err(e),
            }
        }
    }
}

/// Gives the Lease up if this replica holds it (on shutdown), so another takes over at once.
pub async fn release(api: &Api<Lease>, settings: &LeaseSettings) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&settings.name).await? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(settings.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    match api
        .replace(&settings.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs the election until `shutdown` fires, publishing whether this replica leads. A failure to reach
/// the API counts as losing leadership once the Lease could have expired, so two replicas never both
/// believe they lead for longer than the lease duration.
pub async fn run(
    client: Client,
    settings: LeaseSettings,
    leading: watch::Sender<bool>,
    shutdown: Shutdown,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let mut last_success = tokio::time::Instant::now();
    loop {
        match try_acquire(&api, &settings).await {
            Ok(attempt) => {
                last_success = tokio::time::Instant::now();
                let lead = attempt == Attempt::Leader;
                if *leading.borrow() != lead {
                    tracing::info!(identity = %settings.identity, leader = lead, "leadership changed");
                }
                leading.send_replace(lead);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot renew the leader Lease");
                if last_success.elapsed() >= settings.lease_duration {
                    leading.send_replace(false);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.renew_every) => {}
            () = shutdown.cancelled() => break,
        }
    }
    if *leading.borrow() {
        leading.send_replace(false);
        if let Err(error) = release(&api, &settings).await {
            tracing::warn!(%error, "cannot release the leader Lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed_secs_ago: i64, duration: i32, now: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(duration),
            renew_time: Some(MicroTime(
                now.checked_sub(SignedDuration::from_secs(renewed_secs_ago))
                    .unwrap(),
            )),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_valid_lease_of_another_replica_is_respected() {
        let now = Timestamp::now();
        assert!(!may_hold(Some(&spec("b", 5, 15, now)), "a", now));
        assert!(
            may_hold(Some(&spec("b", 16, 15, now)), "a", now),
            "expired lease is taken over"
        );
        assert!(
            may_hold(Some(&spec("a", 5, 15, now)), "a", now),
            "own lease is renewed"
        );
        assert!(may_hold(None, "a", now), "a missing lease is taken");
        let released = LeaseSpec::default();
        assert!(
            may_hold(Some(&released), "a", now),
            "a released lease is taken"
        );
    }

    #[test]
    fn renewal_keeps_acquire_time_and_takeover_counts_a_transition() {
        let settings = LeaseSettings {
            namespace: "ns".into(),
            name: "lease".into(),
            identity: "a".into(),
            lease_duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        };
        let now = Timestamp::now();
        let mut own = spec("a", 5, 15, now);
        own.acquire_time = Some(MicroTime(Timestamp::UNIX_EPOCH));
        own.lease_transitions = Some(3);
        let renewed = lease_spec(&settings, Some(&own), now);
        assert_eq!(renewed.acquire_time, Some(MicroTime(Timestamp::UNIX_EPOCH)));
        assert_eq!(renewed.lease_transitions, Some(3));
        assert_eq!(renewed.renew_time, Some(MicroTime(now)));
        let taken = lease_spec(&settings, Some(&spec("b", 20, 15, now)), now);
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(1));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));
    }
}
