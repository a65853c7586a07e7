//! Where the web server listens, and serving there until `[http]` changes: after a change
//! from the settings the old servers finish their requests (the answer to the change among
//! them), then the new addresses are bound (a listener whose address stays is kept, and
//! connections arriving meanwhile wait in its queue), the certificate for the new TLS setting
//! is loaded, and serving goes on. New settings that cannot be used (a port taken) leave the
//! old listeners serving, and say why.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Http, Tls};
use crate::tls::Identity;

/// The listeners in use and the certificate HTTPS presents.
pub struct Listening {
    pub http: TcpListener,
    /// With `tls` on.
    pub https: Option<TcpListener>,
    /// With `tls` on: the certificate, or why there is none (HTTP then says so).
    pub identity: Option<Result<Arc<Identity>, String>>,
}

impl Listening {
    /// The listeners given (tests and `lookout run` bind them), with the certificate of `http`.
    pub fn new(http: TcpListener, https: Option<TcpListener>, settings: &Http, data: &Path) -> Listening {
        let identity = https.as_ref().map(|_| load(&settings.tls, data));
        Listening { http, https, identity }
    }

    /// Where plain HTTP listens.
    pub fn http_address(&self) -> std::io::Result<SocketAddr> {
        self.http.local_addr()
    }

    /// The page's address, for the log.
    pub fn page(&self) -> String {
        match (&self.https, &self.identity) {
            (Some(l), Some(Ok(_))) => format!("https://{}/", l.local_addr().map(|a| a.to_string()).unwrap_or_default()),
            _ => format!("http://{}/", self.http.local_addr().map(|a| a.to_string()).unwrap_or_default()),
        }
    }

    /// Listeners for `settings`: a listener whose address stays is kept, others are bound.
    /// On failure the current ones come back with the reason.
    pub async fn rebind(self, settings: &Http, data: &Path) -> Result<Listening, (Listening, String)> {
        let http = match keep_or_bind(Some(&self.http), settings.listen).await {
            Ok(new) => new,
            Err(e) => return Err((self, format!("http.listen {}: {e}", settings.listen))),
        };
        // None: HTTPS off; Some(None): the current listener stays; Some(Some(_)): a new one.
        let https = match settings.tls {
            Tls::Off => None,
            _ => match keep_or_bind(self.https.as_ref(), settings.https_listen).await {
                Ok(new) => Some(new),
                Err(e) => return Err((self, format!("http.https_listen {}: {e}", settings.https_listen))),
            },
        };
        let https = match https {
            None => None,
            Some(None) => self.https,
            Some(Some(new)) => Some(new),
        };
        let identity = https.as_ref().map(|_| load(&settings.tls, data));
        Ok(Listening { http: http.unwrap_or(self.http), https, identity })
    }
}

/// `None` when `current` already listens on `address`; else a new listener there.
async fn keep_or_bind(current: Option<&TcpListener>, address: SocketAddr) -> std::io::Result<Option<TcpListener>> {
    if current.is_some_and(|c| c.local_addr().is_ok_and(|a| a == address)) {
        return Ok(None);
    }
    TcpListener::bind(address).await.map(Some)
}

fn load(tls: &Tls, data: &Path) -> Result<Arc<Identity>, String> {
    match Identity::load(tls, data) {
        Ok(Some(identity)) => Ok(Arc::new(identity)),
        Ok(None) => Err("TLS is off".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Serves `app` (and, when HTTPS is on, `plain` and the redirect on plain HTTP) on
/// `listening` until `stop`; keeps the certificate fresh meanwhile.
pub async fn serve(
    listening: &Listening,
    app: Router,
    plain: Router,
    network: Arc<crate::network::Service>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    match (&listening.https, &listening.identity) {
        (Some(secure), Some(Ok(identity))) => {
            let port = secure.local_addr()?.port();
            tracing::info!("listening on {}; http://{}/ redirects to it", listening.page(), listening.http_address()?);
            let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config());
            let fresh = {
                let (identity, stop) = (identity.clone(), stop.clone());
                tokio::spawn(async move { identity.keep_fresh(stop).await })
            };
            let (plain, secure) = tokio::join!(
                super::server::serve(&listening.http, super::redirect::router(port, network, plain), None, stop.clone().cancelled_owned()),
                super::server::serve(secure, app, Some(acceptor), stop.cancelled_owned()),
            );
            fresh.abort();
            plain.and(secure)
        }
        (_, Some(Err(e))) => {
            tracing::error!("HTTPS cannot start: {e}; HTTP answers only that, and recording goes on");
            super::server::serve(&listening.http, super::redirect::unavailable(e.clone()), None, stop.cancelled_owned()).await
        }
        _ => {
            tracing::info!("listening on {}", listening.page());
            super::server::serve(&listening.http, app, None, stop.cancelled_owned()).await
        }
    }
}
