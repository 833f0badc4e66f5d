//! Server keys: the Ed25519 webhook signing key (PROTOCOL §6.5, §7.1) and the
//! HMAC key of callback and claim tokens (§12.9), both derived from one
//! 32-byte secret the engine persists. The host supplies the entropy.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The server secret and what is derived from it.
#[derive(Clone)]
pub struct Keys {
    signing: SigningKey,
    token_key: [u8; 32],
    kid: String,
    x: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Derives every key from `secret`.
    pub fn from_secret(secret: &[u8; 32]) -> Keys {
        let seed: [u8; 32] = Sha256::new()
            .chain_update(b"ds webhook signing v1")
            .chain_update(secret)
            .finalize()
            .into();
        let token_key: [u8; 32] = Sha256::new()
            .chain_update(b"ds callback tokens v1")
            .chain_update(secret)
            .finalize()
            .into();
        let signing = SigningKey::from_bytes(&seed);
        let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
        // RFC 7638 thumbprint over the required members, in lexical order.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let thumb = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Keys {
            signing,
            token_key,
            kid: format!("ds_{thumb}"),
            x,
        }
    }

    /// The signing key's id (`ds_` + its JWK thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK Set served at `…/__ds/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{ "kty": "OKP", "crv": "Ed25519", "kid": self.kid, "use": "sig", "alg": "EdDSA", "x": self.x }]
        })
    }

    /// `Webhook-Signature` for `body` sent at Unix second `t`: an Ed25519
    /// signature over `<t>.<body>`, unpadded base64url.
    pub fn sign_webhook(&self, t: u64, body: &[u8]) -> String {
        let mut message = format!("{t}.").into_bytes();
        message.extend_from_slice(body);
        let sig = self.signing.sign(&message);
        format!(
            "t={t},kid={},ed25519={}",
            self.kid,
            URL_SAFE_NO_PAD.encode(sig.to_bytes())
        )
    }

    /// A bearer token binding `claims` (subscription, incarnation,
    /// generation, wake) with an HMAC-SHA256 tag.
    pub fn token(&self, claims: &str) -> String {
        let tag = self.tag(claims.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(claims.as_bytes()),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The claims of a token whose tag verifies, or `None`.
    pub fn verify_token(&self, token: &str) -> Option<String> {
        let (claims, tag) = token.split_once('.')?;
        let claims = URL_SAFE_NO_PAD.decode(claims).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.token_key).ok()?;
        mac.update(&claims);
        mac.verify_slice(&tag).ok()?;
        String::from_utf8(claims).ok()
    }

    fn tag(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.token_key)
            .expect("any key length works");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
}

/// A SHA-256 hex digest (configuration hashes).
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    #[test]
    fn signatures_verify_with_the_published_key() {
        let keys = Keys::from_secret(&[7u8; 32]);
        let header = keys.sign_webhook(1_700_000_000, b"{\"a\":1}");
        let sig = header.rsplit("ed25519=").next().unwrap();
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
        let jwks = keys.jwks();
        let x = URL_SAFE_NO_PAD
            .decode(jwks["keys"][0]["x"].as_str().unwrap())
            .unwrap();
        let key = VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap();
        assert!(key.verify(b"1700000000.{\"a\":1}", &sig).is_ok());
        assert!(keys.kid().starts_with("ds_"));
    }

    #[test]
    fn tokens_are_tamper_evident() {
        let keys = Keys::from_secret(&[1u8; 32]);
        let t = keys.token("sub-1:9:3:w_1");
        assert_eq!(keys.verify_token(&t).as_deref(), Some("sub-1:9:3:w_1"));
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("sub-1:9:4:w_1"),
            t.split('.').nth(1).unwrap()
        );
        assert_eq!(keys.verify_token(&forged), None);
        assert_eq!(Keys::from_secret(&[2u8; 32]).verify_token(&t), None);
    }
}
