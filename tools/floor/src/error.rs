//! How the floor refuses over HTTP: the contract's error body `{"error": CODE, "message": ...}`
//! with the code's status, for refusals of a room and for bodies that do not parse.

use actix_web::{error::JsonPayloadError, http::StatusCode, web, HttpResponse, ResponseError};
use roomstate_core::protocol::ErrorCode;

use crate::tally::Refusal;

impl ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(self.body())
    }
}

impl Refusal {
    /// The contract's error body (also written by raw sockets' refused upgrades).
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": self.code,
            "message": self.message,
        })
    }
}

/// JSON bodies as the engine takes them: whatever their `Content-Type`, at most `limit` bytes,
/// and a body that does not parse is `400 bad_request` (`413 too_large` past the limit).
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(false)
        .error_handler(|err, _| {
            let refusal = match &err {
                JsonPayloadError::Overflow { limit }
                | JsonPayloadError::OverflowKnownLength { limit, .. } => {
                    Refusal::new(ErrorCode::TooLarge, format!("body over {limit} bytes"))
                }
                other => Refusal::new(ErrorCode::BadRequest, format!("bad JSON body: {other}")),
            };
            refusal.into()
        })
}
