//! The HTTPS listener. It can be closed, so that connections are refused as when the cloud
//! cannot be reached, and opened again on the same address.

use std::{
    fmt,
    net::{SocketAddr, TcpListener},
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use axum::Router;
use axum_server::{Handle, tls_rustls::RustlsConfig};
use rustls::ServerConfig;
use tokio::task::JoinHandle;

use crate::{
    Error,
    faults::Outage,
    sim::{Sim, lock},
};

/// Attempts to bind the old address again when reopening (the port may still be held).
const REBIND_ATTEMPTS: u32 = 20;
const REBIND_PAUSE: Duration = Duration::from_millis(100);

struct Running {
    handle: Handle<SocketAddr>,
    task: JoinHandle<()>,
}

/// A TLS listener serving one router.
pub(crate) struct Listener {
    addr: SocketAddr,
    tls: RustlsConfig,
    router: Router,
    running: Mutex<Option<Running>>,
}

/// Binds the address now, so that the chosen port is known before the router is built.
pub(crate) fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    let listener = TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| Error::Bind { addr, source })?;
    Ok(listener)
}

impl Listener {
    /// Starts serving on a bound socket.
    pub fn start(
        listener: TcpListener,
        tls: Arc<ServerConfig>,
        router: Router,
    ) -> Result<Self, Error> {
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: ([127, 0, 0, 1], 0).into(),
            source,
        })?;
        let this = Self {
            addr,
            tls: RustlsConfig::from_config(tls),
            router,
            running: Mutex::new(None),
        };
        this.serve(listener)?;
        Ok(this)
    }

    fn serve(&self, listener: TcpListener) -> Result<(), Error> {
        let addr = self.addr;
        let server = axum_server::from_tcp_rustls(listener, self.tls.clone())
            .map_err(|source| Error::Bind { addr, source })?;
        let handle = Handle::new();
        let service = self.router.clone().into_make_service();
        let serving = server.handle(handle.clone()).serve(service);
        let task = tokio::spawn(async move {
            if let Err(error) = serving.await {
                tracing::error!(%addr, %error, "The simulator stopped serving");
            }
        });
        *lock(&self.running) = Some(Running { handle, task });
        Ok(())
    }

    /// Whether connections are accepted.
    pub fn is_open(&self) -> bool {
        lock(&self.running).is_some()
    }

    /// Stops accepting and drops every open connection.
    pub async fn close(&self) {
        let running = lock(&self.running).take();
        if let Some(Running { handle, task }) = running {
            handle.shutdown();
            let _ = task.await;
            tracing::info!(addr = %self.addr, "Closed the listener");
        }
    }

    /// Accepts connections again on the same address.
    pub async fn reopen(&self) -> Result<(), Error> {
        if self.is_open() {
            return Ok(());
        }
        let mut attempt = 0;
        let listener = loop {
            match bind(self.addr) {
                Ok(listener) => break listener,
                Err(error) if attempt + 1 >= REBIND_ATTEMPTS => return Err(error),
                Err(_) => attempt += 1,
            }
            tokio::time::sleep(REBIND_PAUSE).await;
        };
        self.serve(listener)?;
        tracing::info!(addr = %self.addr, "Reopened the listener");
        Ok(())
    }

    /// Stops at once, without waiting (for drop).
    pub fn shutdown_now(&self) {
        if let Some(Running { handle, .. }) = lock(&self.running).take() {
            handle.shutdown();
        }
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("addr", &self.addr)
            .field("open", &self.is_open())
            .finish()
    }
}

/// Switches the outage: `Unavailable` is answered by the gateway, `Refuse` closes the listener
/// and any other mode opens it again.
pub(crate) async fn set_outage(sim: &Sim, outage: Outage) -> Result<(), Error> {
    sim.faults().outage = outage;
    let Some(listener) = sim.listener.get().and_then(Weak::upgrade) else {
        return Ok(());
    };
    match outage {
        Outage::Refuse => {
            listener.close().await;
            Ok(())
        }
        Outage::None | Outage::Unavailable => listener.reopen().await,
    }
}
