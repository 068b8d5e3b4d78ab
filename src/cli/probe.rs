//! `widthlab probe`: the container health check.

use std::io::Write;

use super::CliError;

/// A minimal HTTP/1.0 GET for the container health check: success iff the status is 200.
pub fn probe(url: &str) -> Result<(), CliError> {
    use std::io::Read;
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;
    let fail = |m: String| CliError { message: m, code: 1 };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| CliError::usage("--url must start with http://"))?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr = host
        .to_socket_addrs()
        .map_err(|e| fail(format!("resolving {host}: {e}")))?
        .next()
        .ok_or_else(|| fail(format!("no address for {host}")))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| fail(format!("{addr}: {e}")))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| fail(e.to_string()))?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).map_err(|e| fail(e.to_string()))?;
    if head.starts_with(b"HTTP/1.") && &head[9..12] == b"200" {
        Ok(())
    } else {
        Err(fail(format!("unhealthy: {}", String::from_utf8_lossy(&head))))
    }
}
