//! User tokens (docs/api.md "Users and tokens", docs/auth.md): the key an application's login
//! service signs with, and the verification of the JWTs it mints. One key, one algorithm: an HS256
//! shared secret, or a PEM public key whose kind says RS256 or ES256. A token signed any other way
//! (no signature, `alg: none`, HS256 with the public key's bytes as the secret) is refused before
//! its claims are read. All cryptography is the `jsonwebtoken` crate's (RustCrypto backend); this
//! module only chooses the algorithm, reads the claims the contract gives meaning to, and names
//! what is wrong with a token in a few words a client can show.
//!
//! Nothing here knows HTTP or settings files: `config` builds the `Policy` from settings (and
//! refuses a bad key at start), `http` asks it about each request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use roomstate_core::room::UserName;
use serde::Deserialize;
use serde_json::Value;

/// Clock skew tolerated on `exp` (and `nbf`) between the login service and the engine.
pub(crate) const LEEWAY_S: u64 = 5;
/// The shortest HS256 secret accepted: 256 bits, the size of the hash (RFC 7518 §3.2).
pub(crate) const MIN_SECRET_BYTES: usize = 32;
/// The smallest RSA modulus accepted (NIST: 2048 bits and up).
const MIN_RSA_BITS: usize = 2048;

/// Who may create rooms (`auth.create_rooms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CreateRooms {
    /// Anybody who reaches the engine.
    Anyone,
    /// The bearer of a valid user token.
    Users,
    /// Only the admin token.
    Admin,
}

impl CreateRooms {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CreateRooms::Anyone => "anyone",
            CreateRooms::Users => "users",
            CreateRooms::Admin => "admin",
        }
    }
}

/// How the engine judges who a client is.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// `None`: open mode, a client names its user and is believed.
    pub(crate) verifier: Option<Verifier>,
    pub(crate) create_rooms: CreateRooms,
    /// Open because nothing was configured at all (the embedded dev default).
    pub(crate) dev_default: bool,
}

impl Policy {
    /// The open mode of the embedded defaults.
    pub(crate) fn open(create_rooms: CreateRooms, dev_default: bool) -> Self {
        Self {
            verifier: None,
            create_rooms,
            dev_default,
        }
    }

    /// `auth.mode` as the contract spells it.
    pub(crate) fn mode(&self) -> &'static str {
        match self.verifier {
            None => "open",
            Some(_) => "token",
        }
    }

    /// The start-up log line: which mode is in force and what it means.
    pub(crate) fn summary(&self) -> String {
        let rooms = self.create_rooms.as_str();
        match (&self.verifier, self.dev_default) {
            (None, true) => format!(
                "auth.mode = open: clients name their user and are believed (dev default); \
                 auth.create_rooms = {rooms}"
            ),
            (None, false) => format!(
                "auth.mode = open: clients name their user and are believed; \
                 auth.create_rooms = {rooms}"
            ),
            (Some(v), _) => format!(
                "auth.mode = token: user calls need a JWT signed with {} ({}); \
                 auth.create_rooms = {rooms}",
                v.algorithm_name(),
                v.key_source
            ),
        }
    }
}

/// Why a key cannot be used (at start; `config` names the setting).
#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyError {
    #[error(
        "is {0} bytes; HS256 needs at least {MIN_SECRET_BYTES} (e.g. `openssl rand -base64 48`)"
    )]
    ShortSecret(usize),
    #[error(
        "holds a private key; give the engine the public key only (`openssl pkey -in KEY -pubout`)"
    )]
    PrivateKey,
    #[error("is not a PEM public key (-----BEGIN PUBLIC KEY-----) for RS256 or ES256")]
    NotPem,
    #[error("holds a PEM block `{0}`, not a public key for RS256 or ES256")]
    WrongPemKind(String),
    #[error("is not a usable RSA public key: {0}")]
    BadRsa(String),
    #[error("is an RSA key of {0} bits; at least {MIN_RSA_BITS} are needed")]
    WeakRsa(usize),
    #[error("is an EC key that is not on the P-256 curve (ES256 needs P-256)")]
    NotP256,
    #[error("is neither an RSA nor an EC (P-256) public key")]
    UnknownKey,
}

/// What is wrong with the token of a request: each is a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// No token at all.
    #[error("missing token")]
    Missing,
    /// A token was given and is refused; the text is short enough for `error_description`.
    #[error("{0}")]
    Invalid(&'static str),
}

/// The claims the contract gives meaning to; others (`iat`, `iss`, `aud`, `jti`, ...) are
/// allowed and ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claims {
    /// The user the token speaks for.
    pub(crate) user: UserName,
    /// Seconds since the epoch after which (plus the leeway) the token is refused.
    pub(crate) exp: u64,
    /// The rooms the token is good for; `None`: every room.
    pub(crate) rooms: Option<Vec<String>>,
}

impl Claims {
    /// Whether the token is good for room `id`.
    pub(crate) fn allows_room(&self, id: &str) -> bool {
        self.rooms
            .as_ref()
            .is_none_or(|rooms| rooms.iter().any(|r| r == id))
    }

    /// How long the token stays valid from now (zero once it is not).
    pub(crate) fn remaining(&self) -> Duration {
        let until_ms = u128::from(self.exp.saturating_add(LEEWAY_S)) * 1000;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let left = until_ms.saturating_sub(now_ms);
        Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX))
    }
}

/// The claims as they travel, loosely typed: the crate's validation must see a token with a
/// missing or mistyped `exp` or `sub` (and name the fault) before these are read strictly.
#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    sub: Value,
    #[serde(default)]
    exp: Value,
    #[serde(default)]
    rooms: Value,
}

impl RawClaims {
    fn read(self) -> Result<Claims, TokenError> {
        let malformed = TokenError::Invalid("malformed claims");
        let sub = self.sub.as_str().ok_or(malformed.clone())?;
        let user = UserName::parse(sub)
            .map_err(|_| TokenError::Invalid("sub is not a valid user name"))?;
        // Whole seconds (RFC 7519 allows fractions; they only shorten the token here).
        let exp = match self.exp.as_u64() {
            Some(exp) => exp,
            None => self
                .exp
                .as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
                .ok_or(malformed.clone())?,
        };
        let rooms = match self.rooms {
            Value::Null => None,
            Value::Array(list) => Some(
                list.into_iter()
                    .map(|r| match r {
                        Value::String(id) => Ok(id),
                        _ => Err(malformed.clone()),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            _ => return Err(malformed),
        };
        Ok(Claims { user, exp, rooms })
    }
}

/// Verifies tokens with one key and the one algorithm it implies.
#[derive(Clone)]
pub(crate) struct Verifier {
    key: DecodingKey,
    validation: Validation,
    /// Where the key came from, for the start-up line (never the secret itself).
    key_source: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithm", &self.algorithm_name())
            .field("key", &self.key_source)
            .finish()
    }
}

impl Verifier {
    /// HS256 with a shared secret of at least `MIN_SECRET_BYTES`.
    pub(crate) fn hs256(secret: &str) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyError::ShortSecret(secret.len()));
        }
        Ok(Self::new(
            DecodingKey::from_secret(secret.as_bytes()),
            Algorithm::HS256,
            "shared secret auth.hs256_secret".into(),
        ))
    }

    /// RS256 or ES256, whichever the PEM public key is for.
    pub(crate) fn public_key_pem(pem: &[u8], source: &str) -> Result<Self, KeyError> {
        let label = pem_label(pem).ok_or(KeyError::NotPem)?;
        if label.contains("PRIVATE") {
            return Err(KeyError::PrivateKey);
        }
        if label != "PUBLIC KEY" && label != "RSA PUBLIC KEY" {
            return Err(KeyError::WrongPemKind(label));
        }
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            check_rsa(&key)?;
            return Ok(Self::new(
                key,
                Algorithm::RS256,
                format!("RSA key {source}"),
            ));
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            // The verifier reads the point as P-256 when it is made: a P-384 (or any other
            // curve's) key fails here, at start, instead of refusing every token later.
            let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
            (provider.verifier_factory)(&Algorithm::ES256, &key).map_err(|_| KeyError::NotP256)?;
            return Ok(Self::new(
                key,
                Algorithm::ES256,
                format!("EC P-256 key {source}"),
            ));
        }
        Err(KeyError::UnknownKey)
    }

    fn new(key: DecodingKey, algorithm: Algorithm, key_source: String) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_S;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // The contract gives `aud` and `iss` no meaning; an application may set them for its
        // own services without this engine refusing the token.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            key,
            validation,
            key_source,
        }
    }

    /// The one algorithm this engine accepts, e.g. `"RS256"`.
    pub(crate) fn algorithm_name(&self) -> &'static str {
        match self.validation.algorithms.first() {
            Some(Algorithm::HS256) => "HS256",
            Some(Algorithm::RS256) => "RS256",
            Some(Algorithm::ES256) => "ES256",
            _ => "?",
        }
    }

    /// Verifies the signature, the algorithm, `exp` (and `nbf`), and reads the claims.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = jsonwebtoken::decode::<RawClaims>(token.trim(), &self.key, &self.validation)
            .map_err(|e| TokenError::Invalid(describe(e.kind())))?
            .claims
            .read()?;
        // The crate compares `exp` with the current whole second and rounds a fractional `exp`,
        // so it accepts a token for up to a second more: the contract's end (`exp` cut to whole
        // seconds, + the leeway) is checked here, to the millisecond, as a socket's end is.
        if claims.remaining().is_zero() {
            return Err(TokenError::Invalid(describe(&ErrorKind::ExpiredSignature)));
        }
        Ok(claims)
    }
}

/// A few words about a refused token, for `error_description` (no quotes or backslashes: they
/// go into a header's quoted string as they are).
fn describe(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not valid yet (nbf)",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "wrong algorithm",
        ErrorKind::MissingRequiredClaim(claim) if claim == "exp" => {
            "missing or malformed exp claim"
        }
        ErrorKind::MissingRequiredClaim(claim) if claim == "sub" => {
            "missing or malformed sub claim"
        }
        ErrorKind::InvalidClaimFormat(_) => "malformed claims",
        // Not three base64url parts, a header or claims that are no JSON of the right shape,
        // `alg: none` (no such algorithm to the crate), a signature of the wrong length, ...
        _ => "malformed token",
    }
}

/// The label of the first PEM block (`PUBLIC KEY`, `RSA PUBLIC KEY`, ...), if the text has one.
fn pem_label(pem: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(pem).ok()?;
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let len = text[start..].find("-----")?;
    Some(text[start..start + len].to_owned())
}

/// The RSA key parses as a public key and is large enough.
fn check_rsa(key: &DecodingKey) -> Result<(), KeyError> {
    use rsa::{pkcs1::DecodeRsaPublicKey, traits::PublicKeyParts, RsaPublicKey};
    let public = RsaPublicKey::from_pkcs1_der(key.as_bytes())
        .map_err(|e| KeyError::BadRsa(e.to_string()))?;
    let bits = public.size() * 8;
    if bits < MIN_RSA_BITS {
        return Err(KeyError::WeakRsa(bits));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
