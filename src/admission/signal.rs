//! The process's shutdown signal, SIGTERM or SIGINT, shared by every server and the controller.
//! Waits on operating-system signals.

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

/// Completes once the shared stop flag turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _flag = stop.wait_for(|stop| *stop).await;
}
