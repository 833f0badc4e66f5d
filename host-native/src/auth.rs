//! Bearer-token authentication and path-scoped authorization.
//!
//! A token is either a static token from the configuration or a JWT signed
//! with HS256 (a shared secret) or with EdDSA (Ed25519) / RS256 (keys from a
//! JWKS file). Either carries *grants*: permissions (`read`, `write`,
//! `admin`) on stream-path prefixes relative to the stream root. JWTs carry
//! them in the claims `permissions` (an array, or a space-separated string)
//! and `prefixes` (an array); `exp` is required, and `nbf`, `iss` and `aud`
//! are checked when present or configured.
//!
//! What each request needs:
//! - `GET`, `HEAD`: `read` on the path; `PUT`, `POST`: `write`; `DELETE`:
//!   `admin`. `admin` implies `write` and `read`; `write` does not imply `read`.
//! - A fork (`PUT` with `Stream-Forked-From`) also needs `read` on the source.
//! - `OPTIONS` (CORS preflight) needs nothing; subscription callback, ack and
//!   release calls carry their own tokens (PROTOCOL §7) and pass through.
//! - `GET /metrics` needs `admin` on the prefix `""` (every stream).

use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use ring::digest::{digest, SHA256};
use serde::Deserialize;

use crate::config::{AuthSettings, ConfigError};

/// A permission, ordered: each implies those before it except that `Write`
/// does not imply `Read`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read streams.
    Read,
    /// Create, append to, close and fork streams.
    Write,
    /// Everything, including delete and metrics.
    Admin,
}

impl Permission {
    fn parse(text: &str) -> Option<Permission> {
        match text {
            "read" => Some(Permission::Read),
            "write" => Some(Permission::Write),
            "admin" => Some(Permission::Admin),
            _ => None,
        }
    }

    /// The name used in configuration and problem details.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Admin => "admin",
        }
    }

    fn grants(self, needed: Permission) -> bool {
        self == needed || self == Permission::Admin
    }
}

/// What a token allows: permissions on path prefixes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    permissions: Vec<Permission>,
    prefixes: Vec<String>,
}

impl Grants {
    /// True when the grants include `needed` on the root-relative `path`.
    pub fn allow(&self, needed: Permission, path: &str) -> bool {
        self.permissions.iter().any(|p| p.grants(needed))
            && self.prefixes.iter().any(|p| path.starts_with(p.as_str()))
    }
}

/// Why a request is not authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthFailure {
    /// Human-readable reason (sent in the problem detail).
    pub reason: &'static str,
    /// Whether a token was presented.
    pub token_sent: bool,
}

struct StaticToken {
    sha256: Vec<u8>,
    grants: Grants,
}

struct JwtKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// The configured verifier.
pub struct Auth {
    tokens: Vec<StaticToken>,
    keys: Vec<JwtKey>,
    validation: Validation,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    permissions: Option<PermissionClaim>,
    #[serde(default)]
    prefixes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PermissionClaim {
    List(Vec<String>),
    Spaced(String),
}

impl Auth {
    /// Builds the verifier; `None` when auth is off. Unreadable key files
    /// and unusable keys are configuration errors naming the setting.
    pub fn from_settings(s: &AuthSettings) -> Result<Option<Auth>, ConfigError> {
        if !s.enabled() {
            return Ok(None);
        }
        let mut tokens = Vec::new();
        for t in &s.tokens {
            tokens.push(StaticToken {
                sha256: digest(&SHA256, t.token.as_bytes()).as_ref().to_vec(),
                grants: Grants {
                    permissions: t
                        .permissions
                        .iter()
                        .filter_map(|p| Permission::parse(p))
                        .collect(),
                    prefixes: t.prefixes.clone(),
                },
            });
        }
        let mut keys = Vec::new();
        let secret = match (&s.hs256_secret, &s.hs256_secret_file) {
            (Some(secret), _) => Some(secret.clone().into_bytes()),
            (None, Some(file)) => Some(read(file, "auth.hs256_secret_file")?.trim_ascii().to_vec()),
            (None, None) => None,
        };
        if let Some(secret) = secret {
            if secret.len() < 32 {
                return Err(ConfigError(
                    "auth.hs256_secret: use at least 32 bytes of secret for HS256".into(),
                ));
            }
            keys.push(JwtKey {
                kid: None,
                alg: Algorithm::HS256,
                key: DecodingKey::from_secret(&secret),
            });
        }
        if let Some(file) = &s.jwks_file {
            keys.extend(load_jwks(file)?);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = s.leeway_secs;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp"]);
        match &s.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &s.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(Some(Auth {
            tokens,
            keys,
            validation,
        }))
    }

    /// Verifies the `Authorization` header value and returns its grants.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Grants, AuthFailure> {
        let fail = |reason, token_sent| AuthFailure { reason, token_sent };
        let Some(value) = header else {
            return Err(fail(
                "this server requires a bearer token (Authorization: Bearer …)",
                false,
            ));
        };
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(fail("the Authorization header is not a bearer token", true)),
        };
        let hash = digest(&SHA256, token.as_bytes());
        if let Some(t) = self.tokens.iter().find(|t| t.sha256 == hash.as_ref()) {
            return Ok(t.grants.clone());
        }
        if token.matches('.').count() != 2 {
            return Err(fail("the bearer token is not valid", true));
        }
        self.verify_jwt(token).map_err(|reason| fail(reason, true))
    }

    fn verify_jwt(&self, token: &str) -> Result<Grants, &'static str> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| "the bearer token is not a valid JWT")?;
        let key = self
            .keys
            .iter()
            .filter(|k| k.alg == header.alg)
            .find(|k| match (&header.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => true,
                (None, _) => true,
            })
            .ok_or("no configured key verifies this JWT's algorithm and key id")?;
        let mut validation = self.validation.clone();
        validation.algorithms = vec![key.alg];
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => "the JWT has expired",
                K::ImmatureSignature => "the JWT is not valid yet (nbf)",
                K::InvalidSignature => "the JWT's signature does not verify",
                K::InvalidIssuer => "the JWT's issuer is not accepted",
                K::InvalidAudience => "the JWT's audience is not accepted",
                K::MissingRequiredClaim(_) => "the JWT lacks a required claim (exp)",
                _ => "the JWT is not valid",
            }
        })?;
        let permissions = match data.claims.permissions {
            None => Vec::new(),
            Some(PermissionClaim::List(v)) => v,
            Some(PermissionClaim::Spaced(s)) => s.split_whitespace().map(str::to_string).collect(),
        };
        Ok(Grants {
            permissions: permissions
                .iter()
                .filter_map(|p| Permission::parse(p))
                .collect(),
            prefixes: data.claims.prefixes,
        })
    }
}

fn read(path: &Path, setting: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError(format!("{setting} {}: {e}", path.display())))
}

/// Loads the EdDSA (OKP/Ed25519) and RS256 (RSA) keys of a JWKS file.
fn load_jwks(path: &Path) -> Result<Vec<JwtKey>, ConfigError> {
    let bytes = read(path, "auth.jwks_file")?;
    let set: JwkSet = serde_json::from_slice(&bytes).map_err(|e| {
        ConfigError(format!(
            "auth.jwks_file {}: not a JWKS document: {e}",
            path.display()
        ))
    })?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        let alg = match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            _ => {
                return Err(ConfigError(format!(
                    "auth.jwks_file {}: key {i} is neither Ed25519 (OKP) nor RSA",
                    path.display()
                )))
            }
        };
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| ConfigError(format!("auth.jwks_file {}: key {i}: {e}", path.display())))?;
        keys.push(JwtKey {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    if keys.is_empty() {
        return Err(ConfigError(format!(
            "auth.jwks_file {}: holds no keys",
            path.display()
        )));
    }
    Ok(keys)
}

/// What `method` on `path` (root-relative) needs.
pub fn needed(method: &str) -> Option<Permission> {
    match method {
        "GET" | "HEAD" => Some(Permission::Read),
        "PUT" | "POST" => Some(Permission::Write),
        "OPTIONS" => None,
        _ => Some(Permission::Admin),
    }
}

/// Subscription calls authenticated by their own callback or claim tokens
/// (PROTOCOL §7.1, §7.2): `__ds/subscriptions/:id/{callback,ack,release}`.
pub fn carries_own_token(rel_path: &str) -> bool {
    let mut parts = rel_path.split('/');
    matches!(
        (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next()
        ),
        (
            Some("__ds"),
            Some("subscriptions"),
            Some(_),
            Some("callback" | "ack" | "release"),
            None
        )
    )
}

/// True when a path has a `.` or `..` segment (also percent-encoded), which
/// a proxy might resolve differently than this server.
pub fn has_dot_segment(rel_path: &str) -> bool {
    rel_path.split('/').any(|seg| {
        let lower = seg.to_ascii_lowercase().replace("%2e", ".");
        lower == "." || lower == ".."
    })
}

/// The root-relative path a `Stream-Forked-From` value names, resolved with
/// the engine's own rule ([`ds_core::headers::forked_from_path`]).
pub fn fork_source(root: &str, value: &str) -> Option<String> {
    ds_core::headers::forked_from_path(root, value)
        .strip_prefix(root)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoping() {
        let g = Grants {
            permissions: vec![Permission::Read],
            prefixes: vec!["tenant-a/".into()],
        };
        assert!(g.allow(Permission::Read, "tenant-a/x"));
        assert!(!g.allow(Permission::Write, "tenant-a/x"));
        assert!(!g.allow(Permission::Read, "tenant-b/x"));
        assert!(!g.allow(Permission::Read, "tenant-a"));
        assert!(carries_own_token("__ds/subscriptions/s1/ack"));
        assert!(!carries_own_token("__ds/subscriptions/s1/claim"));
        assert!(has_dot_segment("tenant-a/../tenant-b/x"));
        assert!(has_dot_segment("tenant-a/%2E%2e/x"));
        assert!(!has_dot_segment("tenant-a/..x"));
        assert_eq!(fork_source("/v1/stream/", "a/b").as_deref(), Some("a/b"));
        assert_eq!(
            fork_source("/v1/stream/", "/v1/stream/a").as_deref(),
            Some("a")
        );
        assert_eq!(fork_source("/v1/stream/", "/elsewhere"), None);
    }
}
