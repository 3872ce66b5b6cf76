//! HTTP pull: GET the Package URI with ureq; a resumed download asks for
//! the rest with `Range: bytes=<offset>-` and `If-Range: <validator>`
//! (RFC 9110 §14.2, §13.1.5), so a server whose image changed answers 200
//! with the whole new image instead of splicing two.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{DownloadJob, Failure, FailureKind, Sink};

/// Longest wait for a connection, a response or body bytes when no stall
/// timeout is configured.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

pub(super) fn fetch(
    job: &DownloadJob,
    cancel: &AtomicBool,
    sink: &mut Sink,
) -> Result<(), Failure> {
    let mut ranged = sink.len() > 0;
    // At most one retry without Range (a 416 for a stale offset).
    for _ in 0..2 {
        match get(job, cancel, sink, ranged)? {
            Outcome::Done => {
                sink.progress();
                return Ok(());
            }
            Outcome::RetryWhole => {
                sink.restart()?;
                ranged = false;
            }
        }
    }
    Err(Failure::new(
        FailureKind::ConnectionLost,
        "the server refused the range twice",
    ))
}

enum Outcome {
    Done,
    RetryWhole,
}

fn get(
    job: &DownloadJob,
    cancel: &AtomicBool,
    sink: &mut Sink,
    ranged: bool,
) -> Result<Outcome, Failure> {
    let timeout = job.stall.unwrap_or(DEFAULT_TIMEOUT);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_recv_body(Some(timeout.max(Duration::from_secs(1)) * 10))
        .build()
        .into();
    let offset = sink.len();
    let mut request = agent.get(&job.uri);
    if ranged {
        request = request.header("Range", format!("bytes={offset}-"));
        if let Some(validator) = sink
            .etag
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
        {
            request = request.header("If-Range", validator);
        }
    }
    let response = request.call().map_err(|e| {
        let kind = match e {
            ureq::Error::BadUri(_) | ureq::Error::HostNotFound => FailureKind::InvalidUri,
            _ => FailureKind::ConnectionLost,
        };
        Failure::new(kind, format!("GET {}: {e}", job.uri))
    })?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let validator = header("etag").or_else(|| header("last-modified"));
    match status {
        200 => {
            if offset > 0 {
                tracing::info!("the server sent the whole image (changed, or no range support)");
                sink.restart()?;
            }
            if let Some(len) = header("content-length").and_then(|l| l.parse::<u64>().ok()) {
                sink.check_size(len)?;
            }
        }
        206 => {
            let range = header("content-range").unwrap_or_default();
            let (start, total) = parse_content_range(&range).ok_or_else(|| {
                Failure::new(
                    FailureKind::ConnectionLost,
                    format!("206 with an unusable Content-Range {range:?}"),
                )
            })?;
            if start != offset {
                return Ok(Outcome::RetryWhole);
            }
            if let Some(total) = total {
                sink.check_size(total)?;
            }
        }
        416 if ranged => return Ok(Outcome::RetryWhole),
        400 | 403 | 404 | 410 | 414 => {
            return Err(Failure::new(
                FailureKind::InvalidUri,
                format!("GET {}: HTTP {status}", job.uri),
            ))
        }
        _ => {
            return Err(Failure::new(
                FailureKind::ConnectionLost,
                format!("GET {}: HTTP {status}", job.uri),
            ))
        }
    }
    sink.set_etag(validator.map(String::into_bytes));
    let mut reader = response.into_body().into_reader();
    let mut buf = vec![0u8; 4096];
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Failure::new(FailureKind::ConnectionLost, "cancelled"));
        }
        match reader.read(&mut buf) {
            Ok(0) => return Ok(Outcome::Done),
            Ok(n) => sink.write(&buf[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Failure::new(
                    FailureKind::ConnectionLost,
                    format!(
                        "GET {}: connection lost after {} bytes: {e}",
                        job.uri,
                        sink.len()
                    ),
                ))
            }
        }
    }
}

/// `bytes <start>-<end>/<total or *>` → (start, total).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, total))
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_range_is_read_and_garbage_refused() {
        assert_eq!(
            parse_content_range("bytes 4096-65535/65536"),
            Some((4096, Some(65536)))
        );
        assert_eq!(parse_content_range("bytes 0-9/*"), Some((0, None)));
        assert_eq!(parse_content_range("bytes */65536"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range(""), None);
    }
}
