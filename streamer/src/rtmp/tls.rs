//! RTMPS: RTMP over TLS, with rustls.
//!
//! - Clients (the publisher and the players) speak TLS through [`ClientTls`], a sans-IO layer:
//!   bytes read from the socket go in, plaintext comes out; plaintext to send goes in, records
//!   come out. The publisher's blocking socket ([`Wire`]) and the players' async sockets use it
//!   the same way, and keep their own reads (the players' arrival stamps stay the kernel's).
//!   Servers are verified against the system's trusted roots (`SSL_CERT_FILE` replaces them,
//!   as for OpenSSL) and any certificate added with [`trust`] (`--tls-ca`).
//! - The server offers RTMPS on a port of its own: [`Terminator`] accepts TLS there and relays
//!   the plaintext to the plain RTMP listener of the same server over loopback, so every RTMP
//!   path (limits, drain, fan-out, statistics) is the one plain RTMP has. The relay costs one
//!   loopback hop per connection; the network suite measures what RTMPS costs per player with
//!   it (`--peers`, "stream-manager (embedded, RTMPS)").

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {path}: {why}")]
    File {
        what: &'static str,
        path: String,
        why: String,
    },
    #[error("TLS: {0}")]
    Config(String),
    #[error("{0:?} is not a host name or IP address a TLS certificate can name")]
    Name(String),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Certificates trusted beyond the system's roots, and the client configuration built with
/// them (rebuilt when one is added).
struct Trust {
    extra: Vec<CertificateDer<'static>>,
    config: Option<Arc<rustls::ClientConfig>>,
}

fn trusted() -> &'static Mutex<Trust> {
    static TRUST: OnceLock<Mutex<Trust>> = OnceLock::new();
    TRUST.get_or_init(|| {
        Mutex::new(Trust {
            extra: Vec::new(),
            config: None,
        })
    })
}

/// Trusts the certificates in the PEM file `path` for `rtmps://` outputs and players, beside
/// the system's roots (a private CA, or a server's self-signed certificate).
///
/// # Errors
/// The file cannot be read or holds no certificate.
pub fn trust(path: &Path) -> Result<usize, TlsError> {
    let certs = read_certs(path, "CA file")?;
    let n = certs.len();
    let mut t = lock(trusted());
    t.extra.extend(certs);
    t.config = None;
    Ok(n)
}

/// Trusts the certificates in `pem` (as [`trust`], from memory).
///
/// # Errors
/// `pem` holds no certificate.
pub fn trust_pem(pem: &[u8]) -> Result<usize, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Config(format!("certificate: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Config("no certificate in the PEM given".into()));
    }
    let n = certs.len();
    let mut t = lock(trusted());
    t.extra.extend(certs);
    t.config = None;
    Ok(n)
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |why: String| TlsError::File {
        what,
        path: path.display().to_string(),
        why,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail(
            "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

/// The client configuration: the system's roots (or `SSL_CERT_FILE`'s) and those added with
/// [`trust`].
fn client_config() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut t = lock(trusted());
    if let Some(c) = &t.config {
        return Ok(Arc::clone(c));
    }
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped: a private CA given with --tls-ca still works.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    roots.add_parsable_certificates(t.extra.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Arc::new(config);
    t.config = Some(Arc::clone(&config));
    Ok(config)
}

/// The server configuration for the certificate chain in `cert` and the private key in `key`
/// (PEM files, as Let's Encrypt and `openssl req` write them).
///
/// # Errors
/// A file cannot be read, holds nothing usable, or the key does not match the certificate.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = read_certs(cert, "--tls-cert")?;
    let key_fail = |why: String| TlsError::File {
        what: "--tls-key",
        path: key.display().to_string(),
        why,
    };
    let bytes = std::fs::read(key).map_err(|e| key_fail(e.to_string()))?;
    let key_der = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        key_fail(format!(
            "{e} (expected a PEM private key: PKCS#8, PKCS#1 or SEC1)"
        ))
    })?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            TlsError::Config(format!(
                "--tls-cert {} with --tls-key {}: {e}",
                cert.display(),
                key.display()
            ))
        })?;
    Ok(Arc::new(config))
}

/// A client's TLS session without its socket: the caller reads and writes the socket.
pub struct ClientTls {
    conn: rustls::ClientConnection,
}

impl ClientTls {
    /// A session to `host` (a DNS name or an IP address, checked against the certificate).
    ///
    /// # Errors
    /// `host` cannot be named in a certificate, or the configuration cannot be built.
    pub fn new(host: &str) -> Result<Self, TlsError> {
        let name =
            ServerName::try_from(host.to_string()).map_err(|_| TlsError::Name(host.into()))?;
        let mut conn = rustls::ClientConnection::new(client_config()?, name)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        // Every seal drains the records at once: no limit, so a keyframe larger than rustls's
        // default 64 KiB goes in one piece.
        conn.set_buffer_limit(None);
        Ok(ClientTls { conn })
    }

    /// Encrypts `plain`; appends what to send (with anything else pending) to `out`.
    ///
    /// # Errors
    /// The session has failed.
    pub fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        if !plain.is_empty() {
            self.conn.writer().write_all(plain)?;
        }
        self.pending(out)
    }

    /// Appends the records waiting to be sent to `out`.
    ///
    /// # Errors
    /// The session has failed.
    pub fn pending(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(out)?;
        }
        Ok(())
    }

    /// Takes `raw` bytes received from the server; appends their plaintext to `plain`.
    /// Returns false once the server has closed the session (`close_notify`).
    ///
    /// # Errors
    /// The bytes are not valid TLS, or the handshake failed (the certificate included).
    pub fn open(&mut self, mut raw: &[u8], plain: &mut Vec<u8>) -> std::io::Result<bool> {
        let mut open = true;
        while !raw.is_empty() {
            self.conn.read_tls(&mut raw)?;
            let state = self.conn.process_new_packets().map_err(explain)?;
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let at = plain.len();
                plain.resize(at + n, 0);
                self.conn.reader().read_exact(&mut plain[at..])?;
            }
            open &= !state.peer_has_closed();
        }
        Ok(open)
    }

    /// Whether the handshake is still under way.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Ends the session: a `close_notify` to send, appended to `out`.
    ///
    /// # Errors
    /// The session has failed.
    pub fn close(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        self.conn.send_close_notify();
        self.pending(out)
    }

    /// Runs the handshake on a blocking socket.
    ///
    /// # Errors
    /// The socket fails, the server closes, or the handshake fails.
    pub fn handshake_blocking(&mut self, socket: &mut TcpStream) -> std::io::Result<()> {
        while self.conn.is_handshaking() {
            self.conn.complete_io(socket).map_err(|e| {
                match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(tls) => explain(tls.clone()),
                    None => e,
                }
            })?;
        }
        Ok(())
    }

    /// Runs the handshake on an async socket; returns any plaintext that came with its end.
    ///
    /// # Errors
    /// The socket fails, the server closes, or the handshake fails.
    pub async fn handshake_async(
        &mut self,
        socket: &mut tokio::net::TcpStream,
    ) -> std::io::Result<Vec<u8>> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut out, mut plain) = (Vec::new(), Vec::new());
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            out.clear();
            self.pending(&mut out)?;
            if !out.is_empty() {
                socket.write_all(&out).await?;
            }
            if !self.conn.is_handshaking() {
                return Ok(plain);
            }
            let n = socket.read(&mut buf).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed during the TLS handshake",
                ));
            }
            self.open(&buf[..n], &mut plain)?;
        }
    }
}

/// A TLS failure as an I/O error, with what to do about the usual certificate problems.
fn explain(e: rustls::Error) -> std::io::Error {
    let hint = match &e {
        rustls::Error::InvalidCertificate(c) => match c {
            rustls::CertificateError::UnknownIssuer => {
                " (not signed by a trusted root: give its CA with --tls-ca FILE)"
            }
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. } => {
                " (the certificate does not name the host in the URL)"
            }
            rustls::CertificateError::Other(o)
                if format!("{o:?}").contains("CaUsedAsEndEntity") =>
            {
                " (the server presents a CA certificate, e.g. one made with `openssl req -x509` \
                 without `-addext basicConstraints=critical,CA:FALSE`: it needs a server \
                 certificate, signed by that CA or self-signed with CA:FALSE)"
            }
            _ => "",
        },
        _ => "",
    };
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{e}{hint}"))
}

/// A blocking client connection, plain or TLS, that can be split between a reading and a
/// writing thread ([`Wire::split_reader`]): writes are encrypted and sent in order under the
/// caller's lock of the writing half; reads take the TLS session only to decrypt.
pub struct Wire {
    socket: TcpStream,
    tls: Option<Arc<Mutex<ClientTls>>>,
    /// Decrypted bytes not yet read.
    plain: Vec<u8>,
    raw: Vec<u8>,
}

impl Wire {
    /// A plain connection.
    pub fn plain(socket: TcpStream) -> Self {
        Wire {
            socket,
            tls: None,
            plain: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// TLS to `host` over `socket`, handshake done.
    ///
    /// # Errors
    /// The handshake fails (with the reason: an untrusted certificate, a name that does not
    /// match it, the server closing).
    pub fn tls(mut socket: TcpStream, host: &str) -> std::io::Result<Self> {
        let mut tls = ClientTls::new(host).map_err(std::io::Error::other)?;
        tls.handshake_blocking(&mut socket)?;
        Ok(Wire {
            socket,
            tls: Some(Arc::new(Mutex::new(tls))),
            plain: Vec::new(),
            raw: Vec::new(),
        })
    }

    /// The socket underneath (for its options and `TCP_INFO`).
    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// A second handle on the same connection for another thread to read from: it takes the
    /// plaintext decrypted but not yet read; this one then writes.
    ///
    /// # Errors
    /// The socket cannot be duplicated.
    pub fn split_reader(&mut self) -> std::io::Result<Self> {
        Ok(Wire {
            socket: self.socket.try_clone()?,
            tls: self.tls.clone(),
            plain: std::mem::take(&mut self.plain),
            raw: Vec::new(),
        })
    }

    /// No more writes: the TLS `close_notify`, then a FIN.
    pub fn finish(&mut self) {
        if let Some(tls) = &self.tls {
            let mut out = Vec::new();
            if lock(tls).close(&mut out).is_ok() {
                let _ = self.socket.write_all(&out);
            }
        }
        let _ = self.socket.shutdown(std::net::Shutdown::Write);
    }

    /// Closes both directions now.
    pub fn shutdown(&self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match &self.tls {
            None => self.socket.write_all(buf),
            Some(tls) => {
                let mut out = std::mem::take(&mut self.raw);
                out.clear();
                lock(tls).seal(buf, &mut out)?;
                let r = self.socket.write_all(&out);
                self.raw = out;
                r
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.socket.flush()
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(tls) = &self.tls else {
            return self.socket.read(buf);
        };
        while self.plain.is_empty() {
            self.raw.resize(16 * 1024, 0);
            let n = self.socket.read(&mut self.raw)?;
            if n == 0 {
                return Ok(0);
            }
            if !lock(tls).open(&self.raw[..n], &mut self.plain)? && self.plain.is_empty() {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.plain.len());
        buf[..n].copy_from_slice(&self.plain[..n]);
        self.plain.drain(..n);
        Ok(n)
    }
}

/// The server's RTMPS port: accepts TLS and relays each connection's plaintext to the plain
/// RTMP listener at `plain` (see the module's documentation).
pub struct Terminator {
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    plain: SocketAddr,
}

impl Terminator {
    /// Binds `addr` for TLS with `config`, relaying to `plain`. Call it inside the runtime
    /// that will run it.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub fn bind(
        addr: SocketAddr,
        config: Arc<rustls::ServerConfig>,
        plain: SocketAddr,
    ) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Terminator {
            listener: tokio::net::TcpListener::from_std(listener)?,
            acceptor: tokio_rustls::TlsAcceptor::from(config),
            plain,
        })
    }

    /// The bound address.
    ///
    /// # Errors
    /// The socket cannot say.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts until dropped (abort its task); each connection is relayed on a task of its own
    /// and ends when either side closes. The TLS handshake has `handshake_timeout`.
    pub async fn run(self, handshake_timeout: std::time::Duration, verbose: bool) {
        loop {
            let Ok((socket, peer)) = self.listener.accept().await else {
                continue;
            };
            let (acceptor, plain) = (self.acceptor.clone(), self.plain);
            tokio::spawn(async move {
                let _ = socket.set_nodelay(true);
                let tls =
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(socket)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            if verbose {
                                eprintln!("rtmps {peer}: TLS handshake failed: {e}");
                            }
                            return;
                        }
                        Err(_) => {
                            if verbose {
                                eprintln!("rtmps {peer}: no TLS handshake within the timeout");
                            }
                            return;
                        }
                    };
                let Ok(inner) = tokio::net::TcpStream::connect(plain).await else {
                    return;
                };
                let _ = inner.set_nodelay(true);
                relay(tls, inner).await;
            });
        }
    }
}

/// Copies both ways until either side ends; then ends the other (a TLS `close_notify` to the
/// client when the server side closes).
async fn relay(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    inner: tokio::net::TcpStream,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut tls_rd, mut tls_wr) = tokio::io::split(tls);
    let (mut in_rd, mut in_wr) = inner.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = tls_rd.read(&mut buf).await {
            if n == 0 || in_wr.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = in_wr.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = in_rd.read(&mut buf).await {
            if n == 0 || tls_wr.write_all(&buf[..n]).await.is_err() {
                break;
            }
            if tls_wr.flush().await.is_err() {
                break;
            }
        }
        let _ = tls_wr.shutdown().await;
    };
    // The server closing ends the session; the client closing ends it too once the server
    // has seen the FIN and closed its side.
    tokio::select! {
        () = down => {}
        () = async { up.await; std::future::pending::<()>().await } => {}
    }
}
