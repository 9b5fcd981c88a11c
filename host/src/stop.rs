//! A step's stop signal: the embedder ends a running step early
//! ([`Host::run_step_until`]). The step's request in flight ends as at the
//! step deadline, so its record is kept, and the step ends classified as
//! `timeout` / `deadline` with the embedder's message.
//!
//! [`Host::run_step_until`]: crate::Host::run_step_until

use tokio::sync::watch;

/// Gives the stop: held by whoever runs the step.
pub(crate) struct Stopper(watch::Sender<Option<String>>);

/// Observes the stop: in the step's state and its outbound pipeline. Once
/// given, the stop stays given.
#[derive(Clone)]
pub(crate) struct Stop(watch::Receiver<Option<String>>);

/// A stop signal and its observer.
pub(crate) fn channel() -> (Stopper, Stop) {
    let (tx, rx) = watch::channel(None);
    (Stopper(tx), Stop(rx))
}

impl Stopper {
    /// Stops the step, saying why.
    pub(crate) fn stop(&self, why: String) {
        self.0.send_replace(Some(why));
    }
}

impl Stop {
    /// A stop that never comes.
    #[cfg(any(test, feature = "bench"))]
    pub(crate) fn never() -> Self {
        channel().1
    }

    /// Completes once the step is stopped (never, if its stopper is gone
    /// without stopping it).
    pub(crate) async fn stopped(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(Option::is_some).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Why the step was stopped, if it was.
    pub(crate) fn why(&self) -> Option<String> {
        self.0.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_given_stop_is_seen_by_every_observer_and_stays() {
        let (stopper, stop) = channel();
        let other = stop.clone();
        assert_eq!(stop.why(), None);
        stopper.stop("enough".into());
        stop.stopped().await;
        other.stopped().await;
        assert_eq!(other.why().as_deref(), Some("enough"));
        drop(stopper);
        stop.stopped().await;
    }

    #[tokio::test]
    async fn never_never_completes() {
        let never = Stop::never();
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(20), never.stopped()).await;
        assert!(waited.is_err());
        assert_eq!(never.why(), None);
    }
}
