//! A TCP proxy on loopback that can play an outage: while down it cuts every connection and
//! drops new ones at once (counting them), so a client's retry behaviour can be measured
//! against a real API server without stopping the one every test shares.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy; it stops when dropped.
pub struct OutageProxy {
    pub addr: SocketAddr,
    down: watch::Sender<bool>,
    refused: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl OutageProxy {
    /// Forwards connections on a free loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (down, watching) = watch::channel(false);
        let refused = Arc::new(AtomicU64::new(0));
        let counted = refused.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if *watching.borrow() {
                    counted.fetch_add(1, Ordering::Relaxed);
                    drop(client);
                    continue;
                }
                tokio::spawn(forward(client, target, watching.clone()));
            }
        });
        Self {
            addr,
            down,
            refused,
            task,
        }
    }

    /// Starts (`true`) or ends an outage.
    pub fn set_down(&self, down: bool) {
        let _ = self.down.send(down);
    }

    /// Connections dropped during outages so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for OutageProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(mut client: TcpStream, target: SocketAddr, mut down: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = down.wait_for(|d| *d) => {}
    }
}
