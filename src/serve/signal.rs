//! The process's shutdown signal, SIGTERM or SIGINT, turned into the one [`Shutdown`] token that the
//! webhook, the admin server and the controller all watch. Waits on operating-system signals.

use super::Shutdown;

/// Completes when the process receives SIGTERM or SIGINT (Ctrl-C). If a handler cannot be installed,
/// that signal is logged and ignored, so a failure never triggers a shutdown by itself.
pub async fn shutdown_signal() {
    let interrupt = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!("received SIGINT"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGINT");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate() => {}
    }
}

/// Cancels `shutdown` on SIGTERM or SIGINT; the handlers are installed before this returns. Must be
/// called inside a tokio runtime.
pub async fn cancel_on_signal(shutdown: Shutdown) {
    let mut signal = Box::pin(shutdown_signal());
    // The first poll installs the handlers, so a signal sent from now on is seen.
    if futures::poll!(signal.as_mut()).is_ready() {
        shutdown.cancel();
        return;
    }
    tokio::spawn(async move {
        tokio::select! {
            () = signal => {
                tracing::info!("shutting down");
                shutdown.cancel();
            }
            () = shutdown.cancelled() => {}
        }
    });
}

#[cfg(unix)]
async fn terminate() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            terminate.recv().await;
            tracing::info!("received SIGTERM");
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await;
}
