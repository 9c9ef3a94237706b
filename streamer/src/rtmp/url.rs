//! RTMP addresses: `rtmp://host[:port]/app/key`, and `rtmps://` for RTMP over TLS.

/// An `rtmp://host[:port]/app/key` address, or `rtmps://` (RTMP over TLS; port 443 unless
/// given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// `rtmps://`: TLS to the server, verified against the trusted roots.
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub app: String,
    pub key: String,
}

impl std::str::FromStr for RtmpUrl {
    type Err = crate::config::ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            crate::config::ParseError(format!("{s:?} is not rtmp[s]://host[:port]/app/stream-key"))
        };
        let (tls, rest) = match (s.strip_prefix("rtmp://"), s.strip_prefix("rtmps://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(bad()),
        };
        let (hostport, path) = rest.split_once('/').ok_or_else(bad)?;
        let (app, key) = path.split_once('/').ok_or_else(bad)?;
        if app.is_empty() || key.is_empty() || key.contains('/') {
            return Err(bad());
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
            None => (hostport, if tls { 443 } else { 1935 }),
        };
        Ok(RtmpUrl {
            tls,
            host: host.to_string(),
            port,
            app: app.to_string(),
            key: key.to_string(),
        })
    }
}

impl std::fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.app_url(), self.key)
    }
}

impl RtmpUrl {
    /// `rtmp[s]://host:port/app`: the address without the stream key (RTMP's `tcUrl`).
    pub fn app_url(&self) -> String {
        let scheme = if self.tls { "rtmps" } else { "rtmp" };
        format!("{scheme}://{}:{}/{}", self.host, self.port, self.app)
    }
}
