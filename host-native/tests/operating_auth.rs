//! Auth from the outside: the allow/deny matrix of static tokens scoped to
//! tenant prefixes, and JWTs signed with HS256, EdDSA and RS256 (JWKS),
//! against a real server process configured through a TOML file.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;
use support::{request, Reply, Server};

const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!!";
const RSA_KEY: &str = include_str!("fixtures/rsa-test-key.pem");
const RSA_JWKS: &str = include_str!("fixtures/rsa-test-jwks.json");

struct Fixture {
    server: Server,
    ed25519: Vec<u8>,
    _dir: tempfile::TempDir,
}

fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let mut jwks: serde_json::Value = serde_json::from_str(RSA_JWKS).unwrap();
    jwks["keys"].as_array_mut().unwrap().push(json!({
        "kty": "OKP", "crv": "Ed25519", "kid": "ed-test",
        "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
    }));
    std::fs::write(dir.path().join("jwks.json"), jwks.to_string()).unwrap();
    std::fs::write(dir.path().join("hs256.secret"), format!("{SECRET}\n")).unwrap();
    let config = format!(
        r#"
[auth]
hs256_secret_file = "{dir}/hs256.secret"
jwks_file = "{dir}/jwks.json"
issuer = "https://issuer.test"

[[auth.tokens]]
token = "read-a-token"
permissions = ["read"]
prefixes = ["tenant-a/"]

[[auth.tokens]]
token = "write-a-token"
permissions = ["write"]
prefixes = ["tenant-a/"]

[[auth.tokens]]
token = "admin-a-token"
permissions = ["admin"]
prefixes = ["tenant-a/"]

[[auth.tokens]]
token = "root-admin-token"
permissions = ["admin"]
prefixes = [""]
"#,
        dir = dir.path().display()
    );
    let file = dir.path().join("server.toml");
    std::fs::write(&file, config).unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--memory", "--config", file.to_str().unwrap()]);
    Fixture {
        server,
        ed25519: pkcs8.as_ref().to_vec(),
        _dir: dir,
    }
}

fn call(
    f: &Fixture,
    method: &str,
    path: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    let body: &[u8] = if method == "POST" { b"data" } else { b"" };
    if method == "POST" || method == "PUT" {
        headers.push(("content-type", "text/plain"));
    }
    request(f.server.addr, method, path, &headers, body).unwrap()
}

fn status(f: &Fixture, method: &str, path: &str, token: Option<&str>) -> u16 {
    call(f, method, path, token, &[]).status
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(perms: &[&str], prefixes: &[&str], exp_offset: i64) -> serde_json::Value {
    json!({
        "sub": "tester",
        "iss": "https://issuer.test",
        "exp": (now() as i64 + exp_offset) as u64,
        "permissions": perms,
        "prefixes": prefixes,
    })
}

fn hs256(claims: &serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

const A: &str = "/v1/stream/tenant-a/x";
const B: &str = "/v1/stream/tenant-b/x";

fn seed(f: &Fixture) {
    assert_eq!(status(f, "PUT", A, Some("root-admin-token")), 201);
    assert_eq!(status(f, "PUT", B, Some("root-admin-token")), 201);
}

#[test]
fn static_tokens_allow_and_deny() {
    let f = start();
    seed(&f);

    // No token, a malformed one, an unknown one: 401 with a challenge.
    let r = call(&f, "GET", A, None, &[("origin", "https://app.test")]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"durable-streams\"")
    );
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("*"),
        "CORS on refusals"
    );
    assert!(String::from_utf8_lossy(&r.body).contains("\"status\":401"));
    let r = call(&f, "GET", A, Some("nope-not-a-token"), &[]);
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
    let r = request(
        f.server.addr,
        "GET",
        A,
        &[("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 401);

    // A read token reads its tenant and can never write.
    let read = Some("read-a-token");
    assert_eq!(status(&f, "GET", &format!("{A}?offset=-1"), read), 200);
    assert_eq!(status(&f, "HEAD", A, read), 200);
    assert_eq!(status(&f, "POST", A, read), 403);
    assert_eq!(status(&f, "PUT", "/v1/stream/tenant-a/new", read), 403);
    assert_eq!(status(&f, "DELETE", A, read), 403);
    let r = call(&f, "POST", A, read, &[]);
    assert!(String::from_utf8_lossy(&r.body).contains("write permission"));

    // A tenant-a token never touches tenant-b.
    for token in ["read-a-token", "write-a-token", "admin-a-token"] {
        for method in ["GET", "HEAD", "POST", "PUT", "DELETE"] {
            assert_eq!(
                status(&f, method, B, Some(token)),
                403,
                "{token} {method} tenant-b"
            );
        }
    }

    // A write token writes (not reads, not deletes) its tenant.
    let write = Some("write-a-token");
    assert_eq!(status(&f, "PUT", "/v1/stream/tenant-a/w", write), 201);
    assert_eq!(status(&f, "POST", "/v1/stream/tenant-a/w", write), 204);
    assert_eq!(
        status(&f, "GET", "/v1/stream/tenant-a/w?offset=-1", write),
        403
    );
    assert_eq!(status(&f, "DELETE", "/v1/stream/tenant-a/w", write), 403);
    // Path tricks and forks of another tenant's stream are refused.
    assert_eq!(
        status(&f, "PUT", "/v1/stream/tenant-a/../tenant-b/y", write),
        403
    );
    assert_eq!(
        status(&f, "PUT", "/v1/stream/tenant-a/%2e%2e/tenant-b/y", write),
        403
    );
    let fork_b = [("stream-forked-from", "tenant-b/x")];
    assert_eq!(
        call(
            &f,
            "PUT",
            "/v1/stream/tenant-a/fork",
            Some("admin-a-token"),
            &fork_b
        )
        .status,
        403
    );
    let fork_a = [("stream-forked-from", "tenant-a/x")];
    assert_eq!(
        call(
            &f,
            "PUT",
            "/v1/stream/tenant-a/fork",
            Some("admin-a-token"),
            &fork_a
        )
        .status,
        201
    );

    // Admin deletes within its prefix.
    assert_eq!(
        status(&f, "DELETE", "/v1/stream/tenant-a/w", Some("admin-a-token")),
        204
    );

    // Preflight needs no token; health needs none; metrics need root admin.
    let r = request(
        f.server.addr,
        "OPTIONS",
        A,
        &[
            ("origin", "https://app.test"),
            ("access-control-request-method", "POST"),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(status(&f, "GET", "/healthz", None), 200);
    assert_eq!(status(&f, "GET", "/metrics", None), 401);
    assert_eq!(status(&f, "GET", "/metrics", Some("admin-a-token")), 403);
    assert_eq!(status(&f, "GET", "/metrics", Some("root-admin-token")), 200);
}

#[test]
fn jwts_hs256_eddsa_rs256() {
    let f = start();
    seed(&f);
    let rw_a = claims(&["read", "write"], &["tenant-a/"], 600);

    // HS256 from the secret file.
    let t = hs256(&rw_a);
    assert_eq!(status(&f, "POST", A, Some(&t)), 204);
    assert_eq!(status(&f, "GET", &format!("{A}?offset=-1"), Some(&t)), 200);
    assert_eq!(status(&f, "POST", B, Some(&t)), 403);
    assert_eq!(status(&f, "DELETE", A, Some(&t)), 403);
    // A space-separated permission string works too.
    let spaced = json!({"iss": "https://issuer.test", "exp": now() + 600, "permissions": "read", "prefixes": ["tenant-b/"]});
    assert_eq!(
        status(&f, "GET", &format!("{B}?offset=-1"), Some(&hs256(&spaced))),
        200
    );

    // Expired, wrong issuer, missing exp, bad signature: 401.
    let r = call(
        &f,
        "GET",
        A,
        Some(&hs256(&claims(&["read"], &[""], -3600))),
        &[],
    );
    assert_eq!(r.status, 401);
    assert!(
        String::from_utf8_lossy(&r.body).contains("expired"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let mut wrong_iss = rw_a.clone();
    wrong_iss["iss"] = json!("https://evil.test");
    assert_eq!(status(&f, "GET", A, Some(&hs256(&wrong_iss))), 401);
    let no_exp = json!({"iss": "https://issuer.test", "permissions": ["read"], "prefixes": [""]});
    assert_eq!(status(&f, "GET", A, Some(&hs256(&no_exp))), 401);
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &rw_a,
        &EncodingKey::from_secret(b"another-secret-of-32-bytes-length!!"),
    )
    .unwrap();
    assert_eq!(status(&f, "GET", A, Some(&forged)), 401);

    // EdDSA (Ed25519) from the JWKS.
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some("ed-test".into());
    let t = encode(&h, &rw_a, &EncodingKey::from_ed_der(&f.ed25519)).unwrap();
    assert_eq!(status(&f, "POST", A, Some(&t)), 204);
    assert_eq!(status(&f, "POST", B, Some(&t)), 403);

    // RS256 from the JWKS.
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rsa-test".into());
    let rsa = EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap();
    let t = encode(&h, &claims(&["admin"], &["tenant-b/"], 600), &rsa).unwrap();
    assert_eq!(status(&f, "DELETE", B, Some(&t)), 204);
    assert_eq!(status(&f, "GET", A, Some(&t)), 403);
    // Algorithm confusion: an HS256 token naming the RSA key id is refused.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rsa-test".into());
    let confused = encode(&h, &rw_a, &EncodingKey::from_secret(RSA_JWKS.as_bytes())).unwrap();
    assert_eq!(status(&f, "GET", A, Some(&confused)), 401);
}
