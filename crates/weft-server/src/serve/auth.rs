//! Who is calling: Basic credentials checked against argon2 hashes, login tokens signed by
//! the server (HMAC-SHA256, with an expiry), and configured API tokens checked against their
//! SHA-256. Every call passes through [`Authenticator::check`] before it reaches the service.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};
use tonic::{Request, Status};
use weft_core::config::{TokenConfig, UserConfig};

type Hmac = hmac::Hmac<Sha256>;

/// The prefix of the tokens the server issues at login.
const TOKEN_PREFIX: &str = "weft1";

/// The authenticated caller, put in each request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    /// The user or API token name.
    pub(crate) name: String,
}

/// Checks credentials and issues login tokens.
#[derive(Clone)]
pub(crate) struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    users: Vec<(String, String)>,
    tokens: Vec<(String, [u8; 32])>,
    secret: Vec<u8>,
    ttl: Duration,
    /// A hash checked when the user is unknown, so that an unknown user costs as much time
    /// as a wrong password.
    decoy_hash: String,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.inner.users.len())
            .field("tokens", &self.inner.tokens.len())
            .finish()
    }
}

/// Why a config's credentials are unusable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct AuthConfigError(String);

impl Authenticator {
    /// Builds the authenticator from the config's users and tokens; a malformed hash is an
    /// error that names its entry.
    pub(crate) fn new(
        users: &[UserConfig],
        tokens: &[TokenConfig],
        secret: Option<Vec<u8>>,
        ttl: Duration,
    ) -> Result<Self, AuthConfigError> {
        for user in users {
            PasswordHash::new(&user.password_hash).map_err(|e| {
                AuthConfigError(format!(
                    "user `{}`: `password_hash` is not an argon2 hash in PHC form ({e}); \
                     make one with `weft hash-password`",
                    user.name
                ))
            })?;
        }
        let tokens = tokens
            .iter()
            .map(|t| {
                parse_token_hash(&t.hash)
                    .map(|hash| (t.name.clone(), hash))
                    .ok_or_else(|| {
                        AuthConfigError(format!(
                            "token `{}`: `hash` must be `sha256:` and 64 hex digits; make one \
                             with `weft hash-token`",
                            t.name
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let secret = match secret {
            Some(secret) => secret,
            None => random_bytes::<32>().to_vec(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                users: users
                    .iter()
                    .map(|u| (u.name.clone(), u.password_hash.clone()))
                    .collect(),
                tokens,
                secret,
                ttl,
                decoy_hash: hash_password(&STANDARD.encode(random_bytes::<16>())),
            }),
        })
    }

    /// Checks a call's `authorization` header and records the caller in its extensions.
    /// Every failure is UNAUTHENTICATED; a wrong password and an unknown user read the same.
    pub(crate) fn check(&self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| {
                Status::unauthenticated(
                    "no credentials: log in with a user and password (Basic auth, Handshake) \
                     or send a Bearer token",
                )
            })?
            .to_str()
            .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
        let principal = if let Some(basic) = strip_scheme(header, "Basic") {
            self.check_password(basic)?
        } else if let Some(token) = strip_scheme(header, "Bearer") {
            self.check_token(token)?
        } else {
            return Err(Status::unauthenticated(
                "the authorization header must be `Basic ...` or `Bearer ...`",
            ));
        };
        request.extensions_mut().insert(principal);
        Ok(request)
    }

    fn check_password(&self, encoded: &str) -> Result<Principal, Status> {
        let invalid = || Status::unauthenticated("invalid user or password");
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| invalid())?;
        let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
        let (user, password) = decoded.split_once(':').ok_or_else(invalid)?;
        let known = self.inner.users.iter().find(|(name, _)| name == user);
        let hash = known.map_or(self.inner.decoy_hash.as_str(), |(_, hash)| hash.as_str());
        let parsed = PasswordHash::new(hash).map_err(|_| invalid())?;
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        match known {
            Some((name, _)) if matches => Ok(Principal { name: name.clone() }),
            _ => Err(invalid()),
        }
    }

    fn check_token(&self, token: &str) -> Result<Principal, Status> {
        let token = token.trim();
        if let Some(rest) = token
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|t| t.strip_prefix('.'))
        {
            return self.check_login_token(rest);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.inner
            .tokens
            .iter()
            .find(|(_, hash)| *hash == digest)
            .map(|(name, _)| Principal { name: name.clone() })
            .ok_or_else(|| Status::unauthenticated("invalid token"))
    }

    fn check_login_token(&self, rest: &str) -> Result<Principal, Status> {
        let invalid = || Status::unauthenticated("invalid token");
        let mut parts = rest.split('.');
        let (Some(user), Some(expiry), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid())?;
        self.mac(user, expiry)
            .verify_slice(&signature)
            .map_err(|_| invalid())?;
        let expiry: u64 = expiry.parse().map_err(|_| invalid())?;
        if now_secs() >= expiry {
            return Err(Status::unauthenticated("token expired: log in again"));
        }
        let user = URL_SAFE_NO_PAD.decode(user).map_err(|_| invalid())?;
        let name = String::from_utf8(user).map_err(|_| invalid())?;
        Ok(Principal { name })
    }

    /// A login token for `principal`, valid for the configured time.
    pub(crate) fn issue_token(&self, principal: &Principal) -> String {
        let user = URL_SAFE_NO_PAD.encode(principal.name.as_bytes());
        let expiry = (now_secs() + self.inner.ttl.as_secs()).to_string();
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&user, &expiry).finalize().into_bytes());
        format!("{TOKEN_PREFIX}.{user}.{expiry}.{signature}")
    }

    fn mac(&self, user: &str, expiry: &str) -> Hmac {
        let mut mac = Hmac::new_from_slice(&self.inner.secret).expect("HMAC takes any key length");
        mac.update(TOKEN_PREFIX.as_bytes());
        mac.update(b".");
        mac.update(user.as_bytes());
        mac.update(b".");
        mac.update(expiry.as_bytes());
        mac
    }
}

fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

fn parse_token_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix("sha256:")?;
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// The argon2id hash of `password` in PHC form, with a random salt.
pub(crate) fn hash_password(password: &str) -> String {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).expect("16 bytes make a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

/// A new random API token and its config hash (`sha256:<hex>`).
pub(crate) fn new_token() -> (String, String) {
    let token = format!("wft_{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()));
    (token.clone(), token_hash(&token))
}

/// The config hash of an API token.
pub(crate) fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn authenticator(ttl: Duration) -> Authenticator {
        Authenticator::new(
            &[UserConfig::new("alice", hash_password("s3cret"))],
            &[],
            None,
            ttl,
        )
        .unwrap()
    }

    fn call(auth: &Authenticator, header: Option<&str>) -> Result<Principal, Status> {
        let mut request = Request::new(());
        if let Some(header) = header {
            request
                .metadata_mut()
                .insert("authorization", MetadataValue::try_from(header).unwrap());
        }
        let request = auth.check(request)?;
        Ok(request.extensions().get::<Principal>().unwrap().clone())
    }

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    }

    #[test]
    fn passwords_and_login_tokens() {
        let auth = authenticator(Duration::from_secs(60));
        let alice = call(&auth, Some(&basic("alice", "s3cret"))).unwrap();
        assert_eq!(alice.name, "alice");

        let wrong = call(&auth, Some(&basic("alice", "nope"))).unwrap_err();
        let unknown = call(&auth, Some(&basic("mallory", "s3cret"))).unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        assert_eq!(wrong.message(), unknown.message());
        assert_eq!(
            call(&auth, None).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );

        let token = auth.issue_token(&alice);
        assert_eq!(
            call(&auth, Some(&format!("Bearer {token}"))).unwrap(),
            alice
        );
        // Another server's secret, or a changed user, breaks the signature.
        let other = authenticator(Duration::from_secs(60));
        assert!(call(&other, Some(&format!("Bearer {token}"))).is_err());
        let forged = token.replacen(
            &URL_SAFE_NO_PAD.encode("alice"),
            &URL_SAFE_NO_PAD.encode("root"),
            1,
        );
        assert!(call(&auth, Some(&format!("Bearer {forged}"))).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let auth = authenticator(Duration::ZERO);
        let token = auth.issue_token(&Principal {
            name: "alice".into(),
        });
        let status = call(&auth, Some(&format!("Bearer {token}"))).unwrap_err();
        assert!(status.message().contains("expired"), "{status}");
    }

    #[test]
    fn api_tokens_are_checked_against_their_hash() {
        let (token, hash) = new_token();
        let auth = Authenticator::new(
            &[],
            &[TokenConfig::new("etl", hash)],
            None,
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(
            call(&auth, Some(&format!("Bearer {token}"))).unwrap().name,
            "etl"
        );
        assert!(call(&auth, Some("Bearer wft_guess")).is_err());
        let bad = Authenticator::new(
            &[],
            &[TokenConfig::new("etl", "plain-token")],
            None,
            Duration::from_secs(60),
        );
        assert!(bad.unwrap_err().to_string().contains("token `etl`"));
    }
}
