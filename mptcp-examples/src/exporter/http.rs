//! Serving `/metrics` over HTTP (tiny_http): OpenMetrics to a client that asks for it
//! (Prometheus does), the Prometheus text format (0.0.4) to others; errors as HTTP
//! status codes.

use tiny_http::{Header, Method, Request, Response};

/// The content type of OpenMetrics' text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of Prometheus' text format.
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a request asks for.
#[derive(Debug)]
pub enum Route {
    /// `GET /metrics`.
    Metrics {
        /// In OpenMetrics (else the text format).
        openmetrics: bool,
    },
    /// Anything else: answered at once with this status and text.
    Refused(u16, &'static str),
    /// `GET /`: a page naming the metrics' path.
    Index,
}

/// Routes a request by method and path (a query string is ignored).
pub fn route(req: &Request) -> Route {
    let path = req.url().split('?').next().unwrap_or("");
    let get = matches!(req.method(), Method::Get | Method::Head);
    match (path, get) {
        ("/metrics", true) => Route::Metrics {
            openmetrics: req.headers().iter().any(|h| {
                h.field.equiv("Accept") && h.value.as_str().contains("application/openmetrics-text")
            }),
        },
        ("/", true) => Route::Index,
        ("/metrics" | "/", false) => Route::Refused(405, "only GET and HEAD\n"),
        _ => Route::Refused(404, "not found: the metrics are at /metrics\n"),
    }
}

/// Answers a request with a status, a content type and a body (nothing for HEAD).
pub fn respond(req: Request, status: u16, content_type: &str, body: String) {
    let header = Header::from_bytes("Content-Type", content_type).unwrap_or_else(|()| {
        Header::from_bytes("Content-Type", "text/plain").expect("a valid header")
    });
    let response = Response::from_string(body)
        .with_status_code(status)
        .with_header(header);
    // A client that went away is not the exporter's problem.
    let _ = req.respond(response);
}

/// Answers a metrics request with the OpenMetrics text, converted when the client
/// did not ask for OpenMetrics.
pub fn respond_metrics(req: Request, openmetrics_text: String, openmetrics: bool) {
    if openmetrics {
        respond(req, 200, OPENMETRICS, openmetrics_text);
    } else {
        respond(req, 200, TEXT, to_text_format(&openmetrics_text));
    }
}

/// The Prometheus text format (0.0.4) of an OpenMetrics text as prometheus-client
/// writes it: a counter's `# HELP`/`# TYPE` name its `_total` samples, and the
/// OpenMetrics-only lines (`# UNIT`, `# EOF`) go.
pub fn to_text_format(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut help: Option<&str> = None;
    for line in om.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        if line.starts_with("# HELP ") {
            if let Some(h) = help.replace(line) {
                out.push_str(h);
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let suffix = if kind == "counter" { "_total" } else { "" };
            if let Some(h) = help.take() {
                let text = h
                    .strip_prefix("# HELP ")
                    .and_then(|r| r.split_once(' '))
                    .map(|(_, t)| t)
                    .unwrap_or("");
                out.push_str(&format!("# HELP {name}{suffix} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name}{suffix} {kind}\n"));
            continue;
        }
        if let Some(h) = help.take() {
            out.push_str(h);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_are_named_by_their_samples_in_the_text_format() {
        let om = "# HELP a_bytes Bytes.\n# TYPE a_bytes counter\n# UNIT a_bytes bytes\na_bytes_total{x=\"1\"} 5\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n# EOF\n";
        assert_eq!(
            super::to_text_format(om),
            "# HELP a_bytes_total Bytes.\n# TYPE a_bytes_total counter\na_bytes_total{x=\"1\"} 5\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n"
        );
    }
}
