//! `widthlab probe`: the container health check.

use std::io::Write;

use super::CliError;

/// The health URL of a server bound to `bind` (`WIDTHLAB_BIND`): a wildcard address is probed
/// on the loopback interface of the same family.
pub fn health_url(bind: &str) -> String {
    let host_port = match bind.parse::<std::net::SocketAddr>() {
        Ok(std::net::SocketAddr::V4(a)) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        Ok(std::net::SocketAddr::V6(a)) if a.ip().is_unspecified() => format!("[::1]:{}", a.port()),
        _ => bind.to_string(),
    };
    format!("http://{host_port}/healthz")
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_url_follows_the_bind_address() {
        assert_eq!(health_url("0.0.0.0:9000"), "http://127.0.0.1:9000/healthz");
        assert_eq!(health_url("[::]:9000"), "http://[::1]:9000/healthz");
        assert_eq!(health_url("127.0.0.1:18081"), "http://127.0.0.1:18081/healthz");
        assert_eq!(health_url("10.1.2.3:80"), "http://10.1.2.3:80/healthz");
    }
}
