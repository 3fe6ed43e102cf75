//! Calling another node: one HTTP client per thread (awc's client is not `Send`), keep-alive,
//! every call carrying `cluster.secret`, answers read back into typed values or into the API
//! error the other node gave — so a client of this node sees the owner's answer as it was.

use std::{cell::RefCell, time::Duration};

use actix_web::http::{Method, StatusCode};
use roomstate_core::protocol::ErrorCode;
use serde::{de::DeserializeOwned, Serialize};

use super::wire::SECRET_HEADER;

/// How long a call to another node may take: it answers once a mutation is durable, which waits
/// for the journal (a failover stalls writes for seconds).
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long connecting may take: a node that does not accept within this is taken for gone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest answer read from another node (a room list of many rooms).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

thread_local! {
    static CLIENT: RefCell<Option<awc::Client>> = const { RefCell::new(None) };
}

fn client() -> awc::Client {
    CLIENT.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| {
                let connector = awc::Connector::new().timeout(CONNECT_TIMEOUT);
                awc::Client::builder()
                    .connector(connector)
                    .timeout(CALL_TIMEOUT)
                    .disable_redirects()
                    .finish()
            })
            .clone()
    })
}

/// Why a call to another node gave no answer of the kind asked for.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CallError {
    /// No answer (refused, reset, timed out): the node may be gone.
    #[error("node {node} did not answer: {why}")]
    Unreachable { node: String, why: String },
    /// It answered that it does not own the room (421): the owner changed.
    #[error("node {node} does not own the room any more")]
    Misdirected { node: String },
    /// It refused with an API error: passed on to the client as it is.
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
    /// It answered something this node cannot read (another version?).
    #[error("node {node} answered unreadably: {why}")]
    Garbled { node: String, why: String },
}

/// Calls to other nodes, authenticated with the cluster's secret.
#[derive(Clone)]
pub(crate) struct NodeClient {
    secret: String,
}

impl NodeClient {
    pub(crate) fn new(secret: String) -> Self {
        Self { secret }
    }

    /// `method base+path` with `body` as JSON; the answer as `T`.
    pub(crate) async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        node: &str,
        base: &str,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, CallError> {
        self.call_within(node, base, method, path, body, CALL_TIMEOUT)
            .await
    }

    /// `call`, for a call that may take longer than most (a close writes the final record):
    /// taken for unanswered only after `within`.
    pub(crate) async fn call_within<B: Serialize, T: DeserializeOwned>(
        &self,
        node: &str,
        base: &str,
        method: Method,
        path: &str,
        body: Option<&B>,
        within: Duration,
    ) -> Result<T, CallError> {
        let bytes = self.request(node, base, method, path, body, within).await?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::Garbled {
            node: node.to_owned(),
            why: e.to_string(),
        })
    }

    /// Like `call`, for calls answered with no body.
    pub(crate) async fn send<B: Serialize>(
        &self,
        node: &str,
        base: &str,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(), CallError> {
        self.request(node, base, method, path, body, CALL_TIMEOUT)
            .await
            .map(drop)
    }

    async fn request<B: Serialize>(
        &self,
        node: &str,
        base: &str,
        method: Method,
        path: &str,
        body: Option<&B>,
        within: Duration,
    ) -> Result<actix_web::web::Bytes, CallError> {
        let unreachable = |why: String| CallError::Unreachable {
            node: node.to_owned(),
            why,
        };
        let url = format!("{}{path}", base.trim_end_matches('/'));
        let request = client()
            .request(method, &url)
            .timeout(within)
            .insert_header((SECRET_HEADER, self.secret.as_str()));
        let sent = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        };
        let mut response = sent.map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .body()
            .limit(MAX_ANSWER_BYTES)
            .await
            .map_err(|e| unreachable(format!("reading the answer: {e}")))?;
        if status.is_success() {
            return Ok(bytes);
        }
        if status == StatusCode::MISDIRECTED_REQUEST {
            return Err(CallError::Misdirected {
                node: node.to_owned(),
            });
        }
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            error: ErrorCode,
            message: String,
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(CallError::Refused {
                code: body.error,
                message: body.message,
            }),
            Err(_) => Err(CallError::Garbled {
                node: node.to_owned(),
                why: format!("status {status} without an error body"),
            }),
        }
    }
}
