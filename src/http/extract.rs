//! Turning requests into typed input: JSON, path and query settings whose errors are API errors,
//! the client's address (the TCP peer, or what a trusted proxy says of it) and the per-address
//! rate limit. (Credentials are `bearer.rs`, `Origin` is `origin.rs`.)

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use actix_web::{
    dev::Payload, error::JsonPayloadError, http::header::HeaderName, web, FromRequest, HttpRequest,
};
use futures_util::{future::Map, FutureExt as _};
use roomstate_core::{
    protocol::ErrorCode,
    room::{RoomId, UserName},
};
use serde::de::DeserializeOwned;
use tokio::time::{error::Elapsed, Timeout};

use super::AppState;
use crate::error::ApiError;

/// The body limit of the node-to-node calls that carry lists (`NodeSync`, `NodeAdopt`): the
/// sockets one node holds in a room (at most `limits.max_sockets`, ~60 bytes each) or the rooms
/// a leaving node hands over. Only a caller with the cluster's secret gets as far as the body.
pub(crate) const NODE_LIST_BODY_LIMIT: usize = 16 * 1024 * 1024;

pub(crate) fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(false)
        .error_handler(|err, _| {
            let api = match &err {
                JsonPayloadError::Overflow { limit } => {
                    ApiError::new(ErrorCode::TooLarge, format!("body over {limit} bytes"))
                }
                JsonPayloadError::OverflowKnownLength { limit, .. } => {
                    ApiError::new(ErrorCode::TooLarge, format!("body over {limit} bytes"))
                }
                other => ApiError::bad_request(format!("bad JSON body: {other}")),
            };
            api.into()
        })
}

/// How long a request's body may take to arrive once its head has: a client that sends part of
/// a body and stops would otherwise hold its connection for good.
pub(crate) const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// A JSON body (read as `web::Json`, with `json_config`'s limits and errors) that must arrive
/// within `BODY_DEADLINE`; past it the request is `400 bad_request`, and its connection is closed
/// (actix-http closes a connection whose request body was not read whole).
pub(crate) struct Body<T>(pub(crate) T);

impl<T> Body<T> {
    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Body<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

type JsonRead<T> = <web::Json<T> as FromRequest>::Future;
type BodyRead<T> = Result<Result<web::Json<T>, actix_web::Error>, Elapsed>;

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = Map<Timeout<JsonRead<T>>, fn(BodyRead<T>) -> Result<Body<T>, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let read = web::Json::<T>::from_request(req, payload);
        tokio::time::timeout(BODY_DEADLINE, read).map(arrived::<T>)
    }
}

fn arrived<T>(read: BodyRead<T>) -> Result<Body<T>, actix_web::Error> {
    match read {
        Ok(Ok(json)) => Ok(Body(json.into_inner())),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(ApiError::bad_request(format!(
            "the body did not arrive within {} s",
            BODY_DEADLINE.as_secs()
        ))
        .into()),
    }
}

pub(crate) fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _| ApiError::bad_request(err.to_string()).into())
}

pub(crate) fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _| ApiError::bad_request(format!("bad query: {err}")).into())
}

/// A room id from the path; one that cannot exist is simply not found.
pub(crate) fn room_id(text: &str) -> Result<RoomId, ApiError> {
    RoomId::parse(text).map_err(|_| ApiError::unknown_room())
}

pub(crate) fn user(text: &str) -> Result<UserName, ApiError> {
    Ok(UserName::parse(text)?)
}

/// The de-facto standard header in which proxies name the client they forward for.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address, for the rate limit and the logs: the TCP peer, unless it is a trusted
/// proxy (`http.trusted_proxies`), whose `X-Forwarded-For` then names the client.
pub(crate) fn client_addr(state: &AppState, req: &HttpRequest) -> IpAddr {
    // A request always has a peer over TCP; only a test request made without one has none.
    let peer = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    let forwarded = req
        .headers()
        .get_all(X_FORWARDED_FOR)
        .filter_map(|v| v.to_str().ok());
    state.edge.proxies.client(peer, forwarded)
}

/// Refuses a client over its HTTP rate (mutations and WebSocket upgrades). Returns the client's
/// address for the caller's logs.
pub(crate) fn rate_limit(state: &AppState, req: &HttpRequest) -> Result<IpAddr, ApiError> {
    let client = client_addr(state, req);
    if state.http_limiter.check(Some(client)) {
        Ok(client)
    } else {
        tracing::debug!(client.addr = %client, path = req.path(), "rate limited");
        Err(ApiError::rate_limited("too many requests; slow down"))
    }
}
