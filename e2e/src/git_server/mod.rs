//! Real Git servers on loopback for the end-to-end tests: smart HTTP (the real
//! `git http-backend` behind TLS and basic auth) and SSH (Debian's openssh-server), each serving
//! a directory of bare repositories and stopped when dropped.

mod cgi;
mod https;
mod ssh;
mod tls;

use std::net::{Ipv4Addr, TcpListener};

pub use https::{HttpsGitServer, RecordedRequest};
pub use ssh::SshGitServer;

/// A port that was free a moment ago, for a server that must be told its port (sshd) rather
/// than handed a bound socket.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("binding a free loopback port")
        .port()
}

#[cfg(test)]
mod tests;
