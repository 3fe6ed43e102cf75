//! Who is at the door, as far as the network and the browser tell: which peers may speak for a
//! client (`http.trusted_proxies`: whose `X-Forwarded-For` is believed) and which web pages may
//! use the engine from a browser (`http.allowed_origins`). Parsed and checked once at start by
//! `config`, applied to every request by `http`; pure values with no I/O, like `auth`'s policy.

mod origins;
mod proxies;

pub(crate) use origins::AllowedOrigins;
pub(crate) use proxies::TrustedProxies;

/// The edge settings in force, as `config` checked them.
#[derive(Debug, Clone, Default)]
pub(crate) struct EdgePolicy {
    pub(crate) proxies: TrustedProxies,
    pub(crate) origins: AllowedOrigins,
}
