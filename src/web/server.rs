//! The HTTP server loop: the router behind hyper with the limits a device on an untrusted
//! network needs. A client gets [`HEADER_TIMEOUT`] to send each request's headers (also the
//! first one on a new or kept-alive connection), so a slow-loris client cannot hold
//! connections; no address may hold more than [`PER_ADDRESS`] connections and the device no
//! more than [`MAX_CONNECTIONS`]; beyond them a new connection is closed at once. The
//! device's own address (127.0.0.1, ::1: the watchdog's self-probe) is never refused, so
//! clients that fill the limits cannot get the daemon restarted for being unresponsive.
//!
//! With a TLS acceptor the same loop serves HTTPS: the handshake counts against the header
//! timeout, and each request carries [`Https`] so the handlers can mark cookies `Secure`.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Time a client has to send a request's headers, from when the server starts waiting for them.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections the device serves at once.
pub const MAX_CONNECTIONS: usize = 512;
/// Open connections one address may hold (a browser opens about six per host).
pub const PER_ADDRESS: usize = 64;
/// How long shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(5);

/// Marks a request that came over HTTPS.
#[derive(Debug, Clone, Copy)]
pub struct Https;

/// Open connections per address; a [`Slot`] is one of them.
#[derive(Default, Clone)]
struct Connections(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// A connection counted until dropped.
struct Slot {
    connections: Connections,
    address: IpAddr,
}

impl Connections {
    fn take(&self, address: IpAddr) -> Option<Slot> {
        let mut open = self.0.lock().expect("connection table lock never poisoned");
        let own = address == IpAddr::from([127, 0, 0, 1]) || address == IpAddr::from(std::net::Ipv6Addr::LOCALHOST);
        let total: usize = open.values().sum();
        let mine = open.get(&address).copied().unwrap_or(0);
        if !own && (total >= MAX_CONNECTIONS || mine >= PER_ADDRESS) {
            return None;
        }
        open.insert(address, mine + 1);
        Some(Slot { connections: self.clone(), address })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.connections.0.lock().expect("connection table lock never poisoned");
        if let Some(n) = open.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, then lets requests in flight finish (briefly).
/// With `tls`, each connection is a TLS one.
pub async fn serve(
    listener: &tokio::net::TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Half-close: a client that shuts its side after sending the request (netcat, some
    // embedded HTTP clients) still gets the answer.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).half_close(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = Connections::default();
    let mut refused_logged = false;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(slot) = connections.take(peer.ip()) else {
            if !refused_logged {
                tracing::warn!(address = %peer.ip(), "connection refused: too many open connections (limits: {PER_ADDRESS} per address, {MAX_CONNECTIONS} in all)");
                refused_logged = true;
            }
            continue;
        };
        refused_logged = false;
        let connection = Connection { builder: builder.clone(), app: app.clone(), peer, watcher: graceful.watcher() };
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection.run(stream, false).await,
                Some(acceptor) => match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => connection.run(stream, true).await,
                    Ok(Err(e)) => tracing::debug!(address = %peer.ip(), "TLS handshake failed: {e}"),
                    Err(_) => tracing::debug!(address = %peer.ip(), "TLS handshake not finished within {HEADER_TIMEOUT:?}"),
                },
            }
            drop(slot);
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::info!("connections still open after {DRAIN:?} are closed");
    }
    Ok(())
}

/// What serving one accepted connection needs.
struct Connection {
    builder: auto::Builder<TokioExecutor>,
    app: Router,
    peer: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
}

impl Connection {
    async fn run<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(self, stream: S, https: bool) {
        let peer = self.peer;
        let service = self.app.map_request(move |mut request: axum::extract::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            if https {
                request.extensions_mut().insert(Https);
            }
            request
        });
        let connection = self.builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
        let _ = self.watcher.watch(connection.into_owned()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_per_address_and_freed_when_closed() {
        let c = Connections::default();
        let a = IpAddr::from([10, 0, 0, 1]);
        let slots: Vec<Slot> = (0..PER_ADDRESS).map(|_| c.take(a).expect("within the limit")).collect();
        assert!(c.take(a).is_none(), "one address cannot take more");
        assert!(c.take(IpAddr::from([10, 0, 0, 2])).is_some(), "others still can");
        drop(slots);
        assert!(c.take(a).is_some(), "closed connections free their slots");
        let own = IpAddr::from([127, 0, 0, 1]);
        let _mine: Vec<Slot> = (0..MAX_CONNECTIONS + 1).map(|_| c.take(own).expect("the device's own probe is never refused")).collect();
    }
}
