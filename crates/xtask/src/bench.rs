//! A stand-in DogStatsD listener for the load benchmark: receives and counts datagrams, as an agent's
//! socket would, so the services' metric path runs for real.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct UdpSink {
    pub port: u16,
    received: Arc<AtomicU64>,
}

impl UdpSink {
    pub fn start() -> Result<Self, String> {
        let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("udp sink: {e}"))?;
        let port = socket.local_addr().map_err(|e| e.to_string())?.port();
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65_536];
            while socket.recv(&mut buf).is_ok() {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(Self { port, received })
    }

    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}
