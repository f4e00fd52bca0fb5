//! W3C trace context: `traceparent` read at the edge or started there, and
//! echoed on the response with this service's own span id.

use http::HeaderMap;
use rand::Rng;

/// The trace context of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lower-case hex digits; carried onto stored events and stream entries.
    pub trace_id: String,
    /// This request's span id, 16 lower-case hex digits.
    pub span_id: String,
    /// The caller's span id, when it sent a valid `traceparent`.
    pub parent_span_id: Option<String>,
    /// Trace flags, two hex digits (`01` sampled).
    pub flags: String,
}

impl TraceContext {
    /// Continues the caller's trace when `traceparent` is valid, else starts one.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers.get("traceparent").and_then(|v| v.to_str().ok()).and_then(Self::parse).unwrap_or_else(Self::start)
    }

    /// A new trace.
    pub fn start() -> Self {
        Self { trace_id: random_hex(16), span_id: random_hex(8), parent_span_id: None, flags: "01".into() }
    }

    /// Parses a version-00 `traceparent`; `None` when it is malformed.
    fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace_id, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = version == "00"
            && parts.next().is_none()
            && xentri_core::event::is_trace_id(trace_id)
            && is_hex(parent, 16)
            && parent.bytes().any(|b| b != b'0')
            && is_hex(flags, 2);
        valid.then(|| Self {
            trace_id: trace_id.to_owned(),
            span_id: random_hex(8),
            parent_span_id: Some(parent.to_owned()),
            flags: flags.to_owned(),
        })
    }

    /// The `traceparent` to send back (and to downstream calls).
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }
}

fn is_hex(value: &str, len: usize) -> bool {
    value.len() == len && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn random_hex(bytes: usize) -> String {
    let mut rng = rand::rng();
    loop {
        let hex: String = (0..bytes).map(|_| format!("{:02x}", rng.random::<u8>())).collect();
        if hex.bytes().any(|b| b != b'0') {
            return hex;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", value.parse().expect("header"));
        headers
    }

    #[test]
    fn continues_a_valid_traceparent() {
        let ctx = TraceContext::from_headers(&headers("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        assert_eq!(ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_ne!(ctx.span_id, "00f067aa0ba902b7");
        assert!(ctx.traceparent().starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    }

    #[test]
    fn starts_a_trace_on_malformed_input() {
        for bad in [
            "",
            "garbage",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let ctx = TraceContext::from_headers(&headers(bad));
            assert!(ctx.parent_span_id.is_none(), "{bad}");
            assert!(xentri_core::event::is_trace_id(&ctx.trace_id));
        }
    }
}
