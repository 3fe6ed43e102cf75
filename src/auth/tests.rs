//! Verification of user tokens: the one algorithm the key implies, the claims the contract reads,
//! `exp` with its leeway, and every way a token or a key is refused. Tokens are minted with the
//! same crate (as a login service would); RSA and EC keys are made by the `openssl` command.

use std::{path::Path, process::Command};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs(alg: Algorithm, secret: &[u8], claims: &Value) -> String {
    encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn hs256(claims: &Value) -> String {
    hs(Algorithm::HS256, SECRET.as_bytes(), claims)
}

fn verifier() -> Verifier {
    Verifier::hs256(SECRET).unwrap()
}

fn refusal(verifier: &Verifier, token: &str) -> &'static str {
    match verifier.verify(token) {
        Err(TokenError::Invalid(why)) => why,
        other => panic!("{token} was not refused as invalid: {other:?}"),
    }
}

/// A token with any header and claims and a made-up signature part.
fn forged(header: &Value, claims: &Value, signature: &[u8]) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        part(header),
        part(claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[test]
fn a_good_token_gives_its_user_expiry_and_rooms() {
    let exp = now() + 60;
    let claims = verifier()
        .verify(&hs256(
            &json!({"sub": "alice", "exp": exp, "iat": now(), "aud": "x"}),
        ))
        .unwrap();
    assert_eq!(claims.user.as_str(), "alice");
    assert_eq!(claims.exp, exp);
    assert_eq!(claims.rooms, None);
    assert!(claims.allows_room("r_any"), "no `rooms`: every room");
    let left = claims.remaining();
    assert!(
        left > Duration::from_secs(60) && left <= Duration::from_secs(65 + 1),
        "{left:?}"
    );

    let claims = verifier()
        .verify(&hs256(
            &json!({"sub": "bob", "exp": exp, "rooms": ["r_a", "r_b"]}),
        ))
        .unwrap();
    assert!(claims.allows_room("r_b"));
    assert!(!claims.allows_room("r_c"));
    let none = verifier()
        .verify(&hs256(&json!({"sub": "bob", "exp": exp, "rooms": []})))
        .unwrap();
    assert!(
        !none.allows_room("r_a"),
        "an empty list is good for no room"
    );
}

#[test]
fn exp_is_required_and_checked_with_five_seconds_of_leeway() {
    let v = verifier();
    assert_eq!(
        refusal(&v, &hs256(&json!({"sub": "a"}))),
        "missing or malformed exp claim"
    );
    assert_eq!(
        refusal(&v, &hs256(&json!({"sub": "a", "exp": now() - 30}))),
        "token expired"
    );
    assert_eq!(
        refusal(
            &v,
            &hs256(&json!({"sub": "a", "exp": now() - LEEWAY_S - 2}))
        ),
        "token expired"
    );
    // At the leeway's end: refused, though the crate alone would accept it until the next
    // second begins (it compares whole seconds).
    assert_eq!(
        refusal(&v, &hs256(&json!({"sub": "a", "exp": now() - LEEWAY_S}))),
        "token expired"
    );
    // A fraction is cut off, not rounded up (the crate alone rounds it).
    assert_eq!(
        refusal(
            &v,
            &hs256(&json!({"sub": "a", "exp": (now() - LEEWAY_S) as f64 + 0.9}))
        ),
        "token expired"
    );
    // Within the leeway: a login service's clock may run a little ahead.
    let claims = v
        .verify(&hs256(&json!({"sub": "a", "exp": now() - 2})))
        .unwrap();
    assert!(claims.remaining() <= Duration::from_secs(LEEWAY_S));
    assert_eq!(
        refusal(&v, &hs256(&json!({"sub": "a", "exp": "tomorrow"}))),
        "missing or malformed exp claim"
    );
    assert_eq!(
        refusal(
            &v,
            &hs256(&json!({"sub": "a", "exp": now() + 60, "nbf": now() + 600}))
        ),
        "token not valid yet (nbf)"
    );
}

#[test]
fn a_far_future_exp_does_not_overflow() {
    let claims = verifier()
        .verify(&hs256(&json!({"sub": "a", "exp": u64::MAX})))
        .unwrap();
    assert!(claims.remaining() > Duration::from_secs(3600 * 24 * 365 * 100));
}

#[test]
fn sub_must_be_a_user_name() {
    let v = verifier();
    let exp = now() + 60;
    assert_eq!(
        refusal(&v, &hs256(&json!({"exp": exp}))),
        "missing or malformed sub claim"
    );
    for bad in [json!("no spaces"), json!(""), json!("x".repeat(65))] {
        assert_eq!(
            refusal(&v, &hs256(&json!({"sub": bad, "exp": exp}))),
            "sub is not a valid user name"
        );
    }
    assert_eq!(
        refusal(&v, &hs256(&json!({"sub": 7, "exp": exp}))),
        "missing or malformed sub claim",
        "a sub that is no string"
    );
    assert_eq!(
        refusal(&v, &hs256(&json!({"sub": "a", "exp": exp, "rooms": "r_a"}))),
        "malformed claims",
        "rooms is a list"
    );
    assert_eq!(
        refusal(&v, &hs256(&json!({"sub": "a", "exp": exp, "rooms": [1]}))),
        "malformed claims",
        "of room ids"
    );
}

#[test]
fn only_the_algorithm_of_the_key_and_only_its_signature() {
    let v = verifier();
    let claims = json!({"sub": "mallory", "exp": now() + 60});
    assert_eq!(
        refusal(
            &v,
            &hs(
                Algorithm::HS256,
                b"another secret of 32 bytes or more!!",
                &claims
            )
        ),
        "bad signature"
    );
    assert_eq!(
        refusal(&v, &hs(Algorithm::HS512, SECRET.as_bytes(), &claims)),
        "wrong algorithm"
    );
    let none = forged(&json!({"alg": "none", "typ": "JWT"}), &claims, b"");
    assert_eq!(refusal(&v, &none), "malformed token");
    let none_no_sig = none.trim_end_matches('.').to_owned();
    assert_eq!(refusal(&v, &none_no_sig), "malformed token");
    let lower = forged(&json!({"alg": "hs256"}), &claims, b"x");
    assert_eq!(refusal(&v, &lower), "malformed token");
    // A token whose signature was cut off or swapped.
    let good = hs256(&claims);
    let (head, _) = good.rsplit_once('.').unwrap();
    assert_eq!(refusal(&v, &format!("{head}.")), "bad signature");
    assert_eq!(refusal(&v, &format!("{head}.AAAA")), "bad signature");
    for garbage in ["", "garbage", "a.b", "a.b.c", "a.b.c.d", "...."] {
        assert_eq!(refusal(&v, garbage), "malformed token", "{garbage:?}");
    }
}

#[test]
fn secrets_shorter_than_32_bytes_are_refused() {
    assert!(matches!(
        Verifier::hs256("short"),
        Err(KeyError::ShortSecret(5))
    ));
    assert!(Verifier::hs256(&"x".repeat(31)).is_err());
    assert_eq!(
        Verifier::hs256(&"x".repeat(32)).unwrap().algorithm_name(),
        "HS256"
    );
}

/// Runs `openssl` in `dir`, failing the test with a clear message when it is missing.
fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("these tests make RSA and EC keys with the `openssl` command: {e} (apt-get install openssl)")
        });
    assert!(
        status.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// A fresh key pair: (private PEM, public PEM). `kind`: `rsa:BITS` or an EC curve name.
fn key_pair(kind: &str) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let gen: Vec<String> = match kind.strip_prefix("rsa:") {
        Some(bits) => ["-algorithm", "RSA", "-pkeyopt"]
            .map(String::from)
            .into_iter()
            .chain([format!("rsa_keygen_bits:{bits}")])
            .collect(),
        None => ["-algorithm", "EC", "-pkeyopt"]
            .map(String::from)
            .into_iter()
            .chain([format!("ec_paramgen_curve:{kind}")])
            .collect(),
    };
    let mut args = vec!["genpkey"];
    args.extend(gen.iter().map(String::as_str));
    args.extend(["-out", "private.pem"]);
    openssl(dir.path(), &args);
    openssl(
        dir.path(),
        &[
            "pkey",
            "-in",
            "private.pem",
            "-pubout",
            "-out",
            "public.pem",
        ],
    );
    (
        std::fs::read(dir.path().join("private.pem")).unwrap(),
        std::fs::read(dir.path().join("public.pem")).unwrap(),
    )
}

#[test]
fn an_rsa_key_means_rs256_and_nothing_else() {
    let (private, public) = key_pair("rsa:2048");
    let v = Verifier::public_key_pem(&public, "test.pem").unwrap();
    assert_eq!(v.algorithm_name(), "RS256");
    let claims = json!({"sub": "alice", "exp": now() + 60});
    let signing = EncodingKey::from_rsa_pem(&private).unwrap();
    let rs256 = encode(&Header::new(Algorithm::RS256), &claims, &signing).unwrap();
    assert_eq!(v.verify(&rs256).unwrap().user.as_str(), "alice");
    // The classic confusion: HS256 "signed" with the public key's PEM bytes as the secret.
    let confused = hs(Algorithm::HS256, &public, &claims);
    assert_eq!(refusal(&v, &confused), "wrong algorithm");
    let ps256 = encode(&Header::new(Algorithm::PS256), &claims, &signing).unwrap();
    assert_eq!(refusal(&v, &ps256), "wrong algorithm");
    // Another key pair's signature.
    let (other, _) = key_pair("rsa:2048");
    let foreign = encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(&other).unwrap(),
    )
    .unwrap();
    assert_eq!(refusal(&v, &foreign), "bad signature");
}

#[test]
fn an_ec_p256_key_means_es256_and_nothing_else() {
    let (private, public) = key_pair("P-256");
    let v = Verifier::public_key_pem(&public, "test.pem").unwrap();
    assert_eq!(v.algorithm_name(), "ES256");
    let claims = json!({"sub": "bob", "exp": now() + 60});
    let signing = EncodingKey::from_ec_pem(&private).unwrap();
    let es256 = encode(&Header::new(Algorithm::ES256), &claims, &signing).unwrap();
    assert_eq!(v.verify(&es256).unwrap().user.as_str(), "bob");
    assert_eq!(
        refusal(&v, &hs(Algorithm::HS256, &public, &claims)),
        "wrong algorithm"
    );
}

#[test]
fn unusable_keys_are_refused_saying_why() {
    let (private, _) = key_pair("rsa:2048");
    assert!(matches!(
        Verifier::public_key_pem(&private, "k"),
        Err(KeyError::PrivateKey)
    ));
    let (_, small) = key_pair("rsa:1024");
    assert!(matches!(
        Verifier::public_key_pem(&small, "k"),
        Err(KeyError::WeakRsa(1024))
    ));
    let (_, p384) = key_pair("P-384");
    assert!(matches!(
        Verifier::public_key_pem(&p384, "k"),
        Err(KeyError::NotP256)
    ));
    assert!(matches!(
        Verifier::public_key_pem(b"hello", "k"),
        Err(KeyError::NotPem)
    ));
    let garbage = b"-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n";
    assert!(matches!(
        Verifier::public_key_pem(garbage, "k"),
        Err(KeyError::UnknownKey)
    ));
    let cert = b"-----BEGIN CERTIFICATE-----\nbm90IGEga2V5\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        Verifier::public_key_pem(cert, "k"),
        Err(KeyError::WrongPemKind(label)) if label == "CERTIFICATE"
    ));
}

#[test]
fn the_policy_names_its_mode() {
    let open = Policy::open(CreateRooms::Anyone, true);
    assert_eq!(open.mode(), "open");
    assert!(
        open.summary().contains("(dev default)"),
        "{}",
        open.summary()
    );
    let token = Policy {
        verifier: Some(verifier()),
        create_rooms: CreateRooms::Users,
        dev_default: false,
    };
    assert_eq!(token.mode(), "token");
    let summary = token.summary();
    assert!(
        summary.contains("HS256") && summary.contains("users"),
        "{summary}"
    );
    assert!(
        !format!("{token:?}").contains(SECRET),
        "the secret never shows"
    );
}
