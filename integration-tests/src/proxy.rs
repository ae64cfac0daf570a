//! A TCP proxy on loopback for fault tests: it passes traffic through, delays it, or cuts
//! every connection (open ones at once, new ones as they come), as a flaky network would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Passes every byte on at once.
    Pass,
    /// Holds each chunk of data this long before passing it on.
    Slow(Duration),
    /// Closes every connection, and each new one as soon as it is accepted.
    Cut,
}

/// A running proxy; stops accepting when dropped.
pub struct Proxy {
    address: SocketAddr,
    mode: Arc<watch::Sender<Mode>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `target` on a free loopback port.
    pub async fn start(target: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let mode = Arc::new(watch::Sender::new(Mode::Pass));
        let modes = Arc::clone(&mode);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let rx = modes.subscribe();
                if *rx.borrow() == Mode::Cut {
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::select! {
                        () = pump(client_read, server_write, rx.clone()) => {}
                        () = pump(server_read, client_write, rx) => {}
                    }
                });
            }
        });
        Ok(Proxy {
            address,
            mode,
            accept,
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Changes what the proxy does from now on (`Cut` also closes open connections).
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.mode.send_replace(Mode::Cut);
    }
}

/// Copies `from` to `to` chunk by chunk as the mode says, until either end closes or the
/// mode becomes `Cut` (whether it is waiting to read, holding a chunk, or blocked writing).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            () = cut(&mut mode) => return,
        };
        let current = *mode.borrow();
        let forward = async {
            match current {
                Mode::Cut => return Err(()),
                Mode::Slow(delay) => tokio::time::sleep(delay).await,
                Mode::Pass => {}
            }
            to.write_all(&buffer[..n]).await.map_err(|_| ())
        };
        tokio::select! {
            written = forward => if written.is_err() { return },
            () = cut(&mut mode) => return,
        }
    }
}

/// Resolves when the mode becomes `Cut` (or the proxy is gone).
async fn cut(mode: &mut watch::Receiver<Mode>) {
    loop {
        if *mode.borrow_and_update() == Mode::Cut {
            return;
        }
        if mode.changed().await.is_err() {
            return;
        }
    }
}
