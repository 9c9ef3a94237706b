//! The RTMP handshake, written once for the publisher (a blocking socket), the players and the
//! server (tokio sockets): `rml_rtmp`'s sans-IO `Handshake` driven over a [`Transport`], which
//! says how each caller reads and writes bytes and words its failures.

use rml_rtmp::handshake::{Handshake, HandshakeError, HandshakeProcessResult, PeerType};

/// How one caller moves a handshake's bytes, and what it calls each way of failing.
pub(crate) trait Transport {
    type Error;

    /// Reads some bytes into `buf`; `Ok(0)` when the peer closed.
    fn read(&mut self, buf: &mut [u8]) -> impl Future<Output = Result<usize, Self::Error>> + Send;

    /// Writes all of `bytes`.
    fn write(&mut self, bytes: &[u8]) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// The peer closed before the handshake completed.
    fn closed(&mut self) -> Self::Error;

    /// `rml_rtmp` refused to build our first bytes.
    fn refused(&mut self, e: HandshakeError) -> Self::Error;

    /// Runs `rml_rtmp` on bytes the peer sent (the server overrides this to catch a panic).
    fn process(
        &mut self,
        hs: &mut Handshake,
        bytes: &[u8],
    ) -> Result<HandshakeProcessResult, Self::Error> {
        hs.process_bytes(bytes).map_err(|e| self.refused(e))
    }
}

/// Runs the handshake as `peer_type` over `io`; returns the bytes that followed it. A client
/// speaks first (C0 and C1); a server answers.
pub(crate) async fn run<T: Transport>(
    io: &mut T,
    peer_type: PeerType,
) -> Result<Vec<u8>, T::Error> {
    let client = matches!(peer_type, PeerType::Client);
    let mut hs = Handshake::new(peer_type);
    if client {
        let p0p1 = hs
            .generate_outbound_p0_and_p1()
            .map_err(|e| io.refused(e))?;
        io.write(&p0p1).await?;
    }
    let mut buf = [0u8; 4096];
    loop {
        let n = io.read(&mut buf).await?;
        if n == 0 {
            return Err(io.closed());
        }
        match io.process(&mut hs, &buf[..n])? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                io.write(&response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                io.write(&response_bytes).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}
