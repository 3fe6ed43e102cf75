//! The error responses of the OpenAPI document (`components.responses`), one per status: the
//! `Error` body with its `error` narrowed to the codes of that status, and the headers the
//! contract gives it (`WWW-Authenticate`, `Retry-After`). The handlers name them in their
//! `#[utoipa::path]` annotations; `openapi.rs` registers them.

use roomstate_core::protocol::ErrorCode;
use utoipa::{
    openapi::{
        header::{Header, HeaderBuilder},
        response::{Response, ResponseBuilder},
        schema::{AllOfBuilder, ObjectBuilder, Schema, Type},
        ContentBuilder, Ref, RefOr,
    },
    ToResponse,
};

use crate::error::{RATE_LIMITED_RETRY_S, UNAVAILABLE_RETRY_S};

/// An error response: the `Error` body with `error` one of `codes`, and `headers`.
fn error_response(description: &str, codes: &[ErrorCode], headers: &[(&str, Header)]) -> Response {
    let codes: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    let schema: Schema = AllOfBuilder::new()
        .item(Ref::from_schema_name("Error"))
        .item(
            ObjectBuilder::new().property(
                "error",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(codes)),
            ),
        )
        .into();
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new().schema(Some(schema)).build(),
    );
    for (name, header) in headers {
        response = response.header(*name, header.clone());
    }
    response.build()
}

/// `Retry-After: seconds`.
fn retry_after(seconds: u32) -> (&'static str, Header) {
    (
        "Retry-After",
        HeaderBuilder::new()
            .schema(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .description(Some(format!(
                "Seconds to wait before retrying ({seconds} for this code)"
            )))
            .build(),
    )
}

/// Declares a reusable error response (`components.responses.NAME`).
macro_rules! error_responses {
    ($($name:ident: $description:literal, [$($code:ident),+], [$($header:expr),*];)+) => {$(
        pub(super) struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                let response = error_response(
                    $description,
                    &[$(ErrorCode::$code),+],
                    &[$($header),*],
                );
                (stringify!($name), response.into())
            }
        }
    )+};
}

error_responses! {
    BadRequest: "The request is malformed: bad JSON, an unknown field, a bad name, a value out \
                 of range", [BadRequest], [];
    Unauthorized: "Credentials are missing or refused", [Unauthorized], [(
        "WWW-Authenticate",
        HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::String))
            .description(Some(
                "`Bearer realm=\"roomstate\"`, plus `error=\"invalid_token\", \
                 error_description=\"...\"` when a token was refused",
            ))
            .build(),
    )];
    Forbidden: "A valid token for another user or room, or a page of an origin that is not \
                allowed", [Forbidden], [];
    NotFound: "No such room (or route)", [NotFound], [];
    Conflict: "The user is not present, or the room is closed", [NotJoined, RoomClosed], [];
    RoomClosed: "The room is closed", [RoomClosed], [];
    TooLarge: "The body is over `limits.max_body_bytes`", [TooLarge], [];
    RateLimited: "Over the client's rate (`limits.http_rate_per_s`)", [RateLimited],
        [retry_after(RATE_LIMITED_RETRY_S)];
    Misdirected: "This node does not own the room (any more): read its owner again and call \
                  that node", [Unavailable], [];
    Internal: "The SQL store failed; see the server log", [Internal], [];
    Unavailable: "The durability log or the store cannot take writes right now (or the engine \
                  is stopping, or holds its maximum of open rooms); nothing was applied",
        [Unavailable], [retry_after(UNAVAILABLE_RETRY_S)];
}
