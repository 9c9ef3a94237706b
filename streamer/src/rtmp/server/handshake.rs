//! The server's side of the RTMP handshake: the shared loop (`rtmp::handshake`) over a new
//! connection's socket, with the `handshake_timeout` deadline, the server's error words, and a
//! fault of `rml_rtmp` caught and counted.

use super::contain::{contained, sample};
use super::shared::Shared;
use crate::rtmp::handshake_driver::{self as driver, Transport};
use rml_rtmp::handshake::{Handshake, HandshakeError, HandshakeProcessResult, PeerType};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

/// Why a handshake failed, as the connection's log line says it.
type Ended = String;

/// Runs the server's side of the handshake on `socket`, which has `timeout` to complete it;
/// returns the bytes that followed it.
pub(super) async fn run(
    socket: &mut TcpStream,
    timeout: Duration,
    shared: &Shared,
    id: u64,
) -> Result<Vec<u8>, Ended> {
    let mut io = Handshaking {
        socket,
        deadline: Instant::now() + timeout,
        shared,
        id,
    };
    driver::run(&mut io, PeerType::Server).await
}

/// A new connection's socket as a handshake transport: reads and writes end at `deadline`
/// (`handshake_timeout`), and a fault of `rml_rtmp` is counted.
struct Handshaking<'a> {
    socket: &'a mut TcpStream,
    deadline: Instant,
    shared: &'a Shared,
    id: u64,
}

impl Transport for Handshaking<'_> {
    type Error = Ended;

    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Ended> {
        match timeout_at(self.deadline, self.socket.read(buf)).await {
            Err(_) => Err("handshake timed out (handshake_timeout)".into()),
            Ok(Err(e)) => Err(format!("read failed during handshake: {e}")),
            Ok(Ok(n)) => Ok(n),
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Ended> {
        match timeout_at(self.deadline, self.socket.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err("handshake write failed or timed out".into()),
        }
    }

    fn closed(&mut self) -> Ended {
        "peer closed during handshake".into()
    }

    fn refused(&mut self, e: HandshakeError) -> Ended {
        self.shared
            .stats
            .protocol_errors
            .fetch_add(1, Ordering::Relaxed);
        format!("bad handshake: {e:?}")
    }

    fn process(
        &mut self,
        hs: &mut Handshake,
        bytes: &[u8],
    ) -> Result<HandshakeProcessResult, Ended> {
        match contained(|| hs.process_bytes(bytes)) {
            Ok(result) => result.map_err(|e| self.refused(e)),
            Err(c) => Err(self.shared.panicked(
                self.id,
                &format!("its handshake ({})", sample(bytes)),
                &c,
            )),
        }
    }
}
