//! The one middleware every HTTP answer passes. It times and counts the answer by route
//! (`measure.rs`), counts a refusal by its API code, gives an answer to an allowed browser
//! page its CORS headers (`origin.rs`), and marks the request handled in its connection's
//! watchdog (`watchdog.rs`).
//!
//! One layer rather than one per job: each `from_fn` layer boxes the request's future once more
//! and reads the application state again, for every request.

use std::rc::Rc;

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    web,
};
use roomstate_core::protocol::ErrorCode;

use super::{measure::Timing, origin, watchdog::Watch, AppState};

/// Middleware: see the module.
pub(crate) async fn edge(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        // Only an application built without the state has none (tests of the routes alone).
        return next.call(req).await;
    };
    // The connection's watchdog leaves a connection alone while one of its requests is handled.
    let _handling = req.conn_data::<Rc<Watch>>().map(Watch::handling);
    let timing = Timing::start(&req);
    let origin = origin::answer_origin(&state, &req);
    let mut result = next.call(req).await;
    if let Ok(response) = &mut result {
        // Each refusal counted once, where the client gets it (sockets count their `error`
        // frames themselves).
        if let Some(code) = response.response().extensions().get::<ErrorCode>() {
            state.metrics.refused(code.as_str());
        }
        if let Some(origin) = origin {
            origin::mark(response.headers_mut(), origin);
        }
    }
    timing.finish(&state.metrics, &result);
    result
}
