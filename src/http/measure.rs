//! Every HTTP request counted and timed on `/metrics`: `roomstate_http_requests_total{method,
//! route, status}` and `roomstate_http_request_seconds{method, route}` (until the response head
//! is ready; a WebSocket until its upgrade is answered). `route` is the pattern that matched
//! (`/rooms/{id}`), never the path, so no id or user name becomes a label; requests that match
//! no route share `route="unmatched"`, and methods outside the usual ones share `method="other"`,
//! so no client can make up new series.

use std::time::Instant;

use actix_web::{
    dev::{ServiceRequest, ServiceResponse},
    http::Method,
};

use crate::metrics::Metrics;

/// The `route` of a request no route matched.
const UNMATCHED: &str = "unmatched";

/// The `method` label: the standard methods by name, anything else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// A request being timed, from when it reached the middleware (`layer.rs`).
pub(super) struct Timing {
    method: &'static str,
    started: Instant,
}

impl Timing {
    pub(super) fn start(req: &ServiceRequest) -> Timing {
        Timing {
            method: method_label(req.method()),
            started: Instant::now(),
        }
    }

    /// Counts and times the answer by method, route pattern and status.
    pub(super) fn finish<B>(
        self,
        metrics: &Metrics,
        result: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let (route, status) = match result {
            Ok(response) => (response.request().match_pattern(), response.status()),
            // An error no handler turned into a response: actix answers it with its status.
            Err(error) => (None, error.as_response_error().status_code()),
        };
        let route = route.as_deref().unwrap_or(UNMATCHED);
        metrics.http_request(self.method, route, status.as_str(), self.started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_ones_share_a_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
