//! Finding and connecting to the current primary: the URL's server, or the one the sentinels
//! name (the majority's answer first), skipping primaries a failover is replacing, and checking
//! with `ROLE` that the server reached is a primary. Shared by every connection of the journal
//! that must write to, or read the truth from, the primary.

use std::time::{Duration, Instant};

use redis::{aio::MultiplexedConnection, AsyncConnectionConfig, Value};
use roomstate_core::redact;

use super::{fence::Fences, unavailable, RedisJournalConfig, RedisTarget};
use crate::{sentinel, JournalError};

/// How long connecting, and each reply, may take on the connection made.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    pub(super) connect: Duration,
    pub(super) response: Duration,
}

impl Timeouts {
    fn connection_config(self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect))
            .set_response_timeout(Some(self.response))
    }
}

/// Connects to the current primary; answers its address (the URL, or the sentinels'
/// `host:port`) and the connection.
pub(super) async fn connect(
    config: &RedisJournalConfig,
    timeouts: Timeouts,
    fences: Option<&Fences>,
) -> Result<(String, MultiplexedConnection), JournalError> {
    let candidates = match &config.target {
        RedisTarget::Url(url) => vec![url.clone()],
        RedisTarget::Sentinels { addrs, master_name } => {
            // Asking the sentinels uses the journal's own timeouts, whatever the connection
            // made will use.
            let asking = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout));
            sentinel::primary_candidates_via(&config.access.sentinels, addrs, master_name, &asking)
                .await?
        }
    };
    let mut last_error = JournalError::Unavailable("no primary candidate".into());
    for candidate in candidates {
        if let Some(reason) = fences.and_then(|f| f.blocks(&candidate, Instant::now())) {
            last_error = JournalError::Unavailable(reason);
            continue;
        }
        match connect_checked(config, timeouts, &candidate).await {
            Ok(conn) => return Ok((candidate, conn)),
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

/// Connects to `target` (a URL or `host:port`) with the servers' credentials and TLS, and
/// checks that it is a primary.
async fn connect_checked(
    config: &RedisJournalConfig,
    timeouts: Timeouts,
    target: &str,
) -> Result<MultiplexedConnection, JournalError> {
    let access = &config.access.servers;
    let shown = redact::url(target);
    let mut conn = access
        .connect(target, &timeouts.connection_config())
        .await
        .map_err(|e| unavailable(&format!("connect {shown}"), e))?;
    let role: Vec<Value> = redis::cmd("ROLE")
        .query_async(&mut conn)
        .await
        .map_err(|e| unavailable(&format!("ROLE on {shown}"), access.describe(&e)))?;
    let role: String = role
        .into_iter()
        .next()
        .map(redis::from_redis_value)
        .transpose()
        .map_err(|e| unavailable("ROLE reply", e))?
        .unwrap_or_default();
    if role != "master" {
        return Err(JournalError::Unavailable(format!(
            "{shown} is a {role}, not the primary (a failover may be under way)"
        )));
    }
    Ok(conn)
}
