//! Authentication: who is calling, and for which org.
//!
//! Three kinds of bearer token, told apart by `alg` and `kid`:
//! - user tokens as Clerk issues them (v1 and v2 session tokens), RS256 or
//!   ES256, verified against a JWKS ([`jwks`]) kept fresh in the background;
//!   `iss` (required with a JWKS), `aud` and `azp` must be present and match
//!   when configured;
//! - service tokens, HS256 with the calling service's own secret (`kid` = its
//!   name, `sub` = `service:<name>`); their lifetime is bounded from the
//!   server's clock (`exp ≤ now + service_token_max_ttl_secs + leeway`), never
//!   from their own `iat`;
//! - dev tokens, HS256 with `auth.dev_secret` (`kid` = `dev`), accepted only
//!   while that secret is configured; minted by `api dev-token`.
//!
//! An HS256 token is only ever checked against a configured HMAC secret, never
//! against a public key, so the "sign with the public key" confusion fails.
//!
//! Every refused token gets the same 401 detail, [`REFUSED`]: which check
//! failed would tell a prober which service names exist or whether dev tokens
//! are live. The log line ("token refused", at info) keeps the precise cause.

pub mod claims;
pub mod jwks;
pub mod token;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use uuid::Uuid;
use warp::Filter;
use xentri_core::Actor;
use xentri_core::settings::AuthSettings;

pub use claims::Claims;
use jwks::{Jwks, JwksError};

use crate::problem::{ApiError, Problem, ProblemKind};

/// The `kid` of dev tokens.
pub const DEV_KID: &str = "dev";
/// The `iss` of dev tokens.
pub const DEV_ISSUER: &str = "xentri-dev";

/// The one `detail` of every 401: no token, or a token refused for any reason.
pub const REFUSED: &str = "A valid bearer token or __session cookie is required";

/// An authenticated caller, acting for one org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The org this request acts for (the token's, or the one `x-org-id` switched to).
    pub org_id: Uuid,
    /// Recorded on events: `user:<sub>` or `service:<name>`.
    pub actor: Actor,
    /// The token's `sub`, for logs.
    pub subject: String,
    /// The org role, when the token carries one.
    pub org_role: Option<String>,
    /// The org permissions the token carries.
    pub permissions: Vec<String>,
    /// A trace id the token carries (service tokens propagate it).
    pub trace_id: Option<String>,
}

/// Why a request is not authenticated; every variant is a 401 but the last
/// two. The message is for the log: the 401 answer says only [`REFUSED`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header and no `__session` cookie.
    #[error("A bearer token or __session cookie is required")]
    Missing,
    /// Not a JWT, or `alg` is not one we accept (`none` included).
    #[error("The token is malformed or uses an unsupported algorithm")]
    Malformed,
    /// No configured key has the token's `kid`.
    #[error("The token's signing key is not known")]
    UnknownKey,
    /// The signature does not verify.
    #[error("The token's signature is invalid")]
    BadSignature,
    /// `exp` has passed (beyond the allowed skew).
    #[error("The token has expired")]
    Expired,
    /// `nbf` is still ahead (beyond the allowed skew).
    #[error("The token is not valid yet")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("The token's issuer is not accepted")]
    WrongIssuer,
    /// `aud` does not include the configured audience.
    #[error("The token's audience is not accepted")]
    WrongAudience,
    /// A claim is missing or of the wrong type.
    #[error("The token lacks a valid {0} claim")]
    BadClaim(&'static str),
    /// `iat` is ahead of the server's clock (beyond the allowed skew).
    #[error("The token was issued in the future")]
    IssuedInFuture,
    /// A service token whose `exp` is further ahead than allowed.
    #[error("Service tokens may expire at most {0} seconds ahead")]
    TooLong(u64),
    /// `azp` is missing or not one of `auth.authorized_parties`.
    #[error("The token's authorized party is not accepted")]
    WrongParty,
    /// `x-org-id` names an org the token does not grant (403).
    #[error("The token does not grant access to this org")]
    OrgNotGranted,
    /// The user-token keys cannot be had (the JWKS was never fetched, or the
    /// fetch an unknown `kid` called for failed): 503, the client retries.
    #[error("The token's signing keys cannot be fetched right now")]
    KeysUnavailable,
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let problem = match error {
            AuthError::OrgNotGranted => Problem::new(ProblemKind::Forbidden, error.to_string()),
            AuthError::KeysUnavailable => {
                tracing::warn!(reason = %error, "token not verified");
                Problem::new(ProblemKind::ServiceUnavailable, error.to_string())
            }
            _ => {
                tracing::info!(reason = %error, "token refused");
                Problem::new(ProblemKind::Unauthorized, REFUSED)
            }
        };
        ApiError::Problem(problem)
    }
}

/// Verifies tokens. Built once at start-up from `[auth]`.
pub struct Authenticator {
    /// HMAC keys by `kid`: `dev` and the service names.
    hmac: HashMap<String, HmacKey>,
    /// User-token keys, when a JWKS is configured.
    jwks: Option<Jwks>,
    /// Expected `iss` of user tokens.
    issuer: Option<String>,
    /// Expected `aud` of user tokens.
    audience: Option<String>,
    /// Accepted `azp` of user tokens; empty: not checked.
    authorized_parties: Vec<String>,
    /// Allowed clock skew, seconds.
    leeway: u64,
    /// Longest service-token lifetime, seconds.
    service_max_ttl: u64,
}

struct HmacKey {
    key: DecodingKey,
    kind: TokenKind,
}

/// Which rules a token is checked by.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenKind {
    /// RS256/ES256 from the JWKS: configured `iss`/`aud`.
    User,
    /// HS256 with the dev secret: `iss` = `xentri-dev`.
    Dev,
    /// HS256 with this service's secret: `sub` = `service:<name>`, short-lived.
    Service(String),
}

impl Authenticator {
    /// Reads `[auth]`; a JWKS file is read now, a JWKS URL on first use.
    pub async fn new(settings: &AuthSettings) -> Result<Self, JwksError> {
        let mut hmac = HashMap::new();
        if let Some(secret) = settings.dev_secret() {
            let key = DecodingKey::from_secret(secret.expose_secret().as_bytes());
            hmac.insert(DEV_KID.to_owned(), HmacKey { key, kind: TokenKind::Dev });
        }
        for (name, secret) in &settings.services {
            let key = DecodingKey::from_secret(secret.expose_secret().as_bytes());
            hmac.insert(name.clone(), HmacKey { key, kind: TokenKind::Service(name.clone()) });
        }
        let timing = jwks::Timing {
            ttl: Duration::from_secs(settings.jwks_ttl_secs),
            refetch_interval: Duration::from_secs(settings.jwks_refetch_interval_secs),
            first_retry: jwks::FIRST_RETRY,
        };
        let jwks = match (&settings.jwks_path, &settings.jwks_url) {
            (Some(path), _) => Some(Jwks::from_file(path.clone(), timing).await?),
            (None, Some(url)) => Some(Jwks::from_url(url.clone(), timing)?),
            (None, None) => None,
        };
        Ok(Self {
            hmac,
            jwks,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            authorized_parties: settings.authorized_parties.clone(),
            leeway: settings.leeway_secs,
            service_max_ttl: settings.service_token_max_ttl_secs,
        })
    }

    /// Verifies `token` and returns who it is for, acting for `switch_to` when
    /// given (and granted).
    pub async fn authenticate(&self, token: &str, switch_to: Option<Uuid>) -> Result<Principal, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let kid = header.kid.as_deref();
        let claims = match header.alg {
            Algorithm::HS256 => {
                let hmac = kid.and_then(|kid| self.hmac.get(kid)).ok_or(AuthError::UnknownKey)?;
                let claims = self.verify(token, &hmac.key, header.alg, &hmac.kind)?;
                self.check_hmac_claims(&claims, &hmac.kind)?;
                claims
            }
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self.jwks.as_ref().ok_or(AuthError::UnknownKey)?;
                let kid = kid.ok_or(AuthError::UnknownKey)?;
                let key = match jwks.key(kid, header.alg).await {
                    Ok(key) => key,
                    Err(JwksError::UnknownKey) => return Err(AuthError::UnknownKey.into()),
                    Err(error) => {
                        tracing::warn!(error = %error, "jwks unavailable");
                        return Err(AuthError::KeysUnavailable.into());
                    }
                };
                let claims = self.verify(token, &key, header.alg, &TokenKind::User)?;
                self.check_user_claims(&claims)?;
                claims
            }
            _ => return Err(AuthError::Malformed.into()),
        };
        Ok(claims.into_principal(switch_to)?)
    }

    fn verify(&self, token: &str, key: &DecodingKey, alg: Algorithm, kind: &TokenKind) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        // A configured issuer or audience makes its claim required: the
        // library would otherwise accept a token that leaves it out.
        let mut required = vec!["exp", "sub"];
        match kind {
            TokenKind::User => {
                if let Some(issuer) = &self.issuer {
                    validation.set_issuer(&[issuer]);
                    required.push("iss");
                }
                if let Some(audience) = &self.audience {
                    validation.set_audience(&[audience]);
                    validation.validate_aud = true;
                    required.push("aud");
                }
            }
            TokenKind::Dev => {
                validation.set_issuer(&[DEV_ISSUER]);
                required.push("iss");
            }
            TokenKind::Service(_) => {}
        }
        validation.set_required_spec_claims(&required);
        use jsonwebtoken::errors::ErrorKind;
        jsonwebtoken::decode::<Claims>(token, key, &validation).map(|data| data.claims).map_err(|error| {
            match error.kind() {
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                ErrorKind::InvalidAudience => AuthError::WrongAudience,
                ErrorKind::MissingRequiredClaim(claim) if claim == "exp" => AuthError::BadClaim("exp"),
                ErrorKind::MissingRequiredClaim(claim) if claim == "sub" => AuthError::BadClaim("sub"),
                ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => AuthError::WrongIssuer,
                ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => AuthError::WrongAudience,
                ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => AuthError::BadClaim("registered"),
                _ => AuthError::Malformed,
            }
        })
    }

    /// What a user token must carry beyond a valid signature and times.
    fn check_user_claims(&self, claims: &Claims) -> Result<(), AuthError> {
        self.check_iat(claims, now())?;
        if claims.sub.starts_with("service:") {
            return Err(AuthError::BadClaim("sub"));
        }
        if !self.authorized_parties.is_empty()
            && !claims.azp.as_ref().is_some_and(|azp| self.authorized_parties.contains(azp))
        {
            return Err(AuthError::WrongParty);
        }
        Ok(())
    }

    fn check_hmac_claims(&self, claims: &Claims, kind: &TokenKind) -> Result<(), AuthError> {
        let now = now();
        self.check_iat(claims, now)?;
        match kind {
            TokenKind::User => {}
            TokenKind::Dev => {
                if claims.sub.starts_with("service:") {
                    return Err(AuthError::BadClaim("sub"));
                }
            }
            TokenKind::Service(name) => {
                if claims.sub != format!("service:{name}") {
                    return Err(AuthError::BadClaim("sub"));
                }
                // Bounded from our clock: a token that says it was issued
                // long after it really was cannot buy itself a longer life.
                let exp = claims.exp.ok_or(AuthError::BadClaim("exp"))?;
                if exp > now.saturating_add(self.service_max_ttl).saturating_add(self.leeway) {
                    return Err(AuthError::TooLong(self.service_max_ttl));
                }
            }
        }
        Ok(())
    }

    /// `iat`, when present, is not ahead of our clock beyond the leeway.
    fn check_iat(&self, claims: &Claims, now: u64) -> Result<(), AuthError> {
        match claims.iat {
            Some(iat) if iat > now.saturating_add(self.leeway) => Err(AuthError::IssuedInFuture),
            _ => Ok(()),
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The bearer token of a request: `Authorization: Bearer …`, else the
/// `__session` cookie.
pub fn bearer(authorization: Option<&str>, session_cookie: Option<&str>) -> Result<String, AuthError> {
    if let Some(value) = authorization {
        let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::Malformed);
        }
        return Ok(token.trim().to_owned());
    }
    session_cookie.filter(|c| !c.is_empty()).map(str::to_owned).ok_or(AuthError::Missing)
}

/// The header that names the org a request acts for, instead of the token's
/// active one.
pub const ORG_HEADER: &str = "x-org-id";

/// The caller the edge authenticated before reading the body, handed to the
/// routes as a request extension.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

/// Authenticates a request from its headers: the bearer token or `__session`
/// cookie, acting for the org `x-org-id` names when given. Records the
/// caller on the current span.
pub async fn authenticate_request(auth: &Authenticator, headers: &http::HeaderMap) -> Result<Principal, ApiError> {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().map_err(|_| AuthError::Malformed));
    let authorization = text("authorization").transpose()?;
    let cookie = session_cookie(headers);
    let switch_to = match text(ORG_HEADER).transpose()? {
        None => None,
        Some(raw) => Some(claims::org_ref(raw).ok_or_else(|| {
            ApiError::Problem(Problem::new(
                ProblemKind::MalformedRequest,
                "Header x-org-id must be an org id: a UUID or a Clerk organisation id (org_…)",
            ))
        })?),
    };
    let token = bearer(authorization, cookie.as_deref())?;
    let principal = auth.authenticate(&token, switch_to).await?;
    let span = tracing::Span::current();
    span.record("org_id", tracing::field::display(principal.org_id));
    span.record("user_id", tracing::field::display(&principal.subject));
    Ok(principal)
}

/// The outcome of authenticating a request. Never rejects, so a bad token on
/// a matched route is a 401, not a 404 or 405 from a sibling route; the
/// handler checks it. The edge normally authenticated the request already
/// (before reading its body) and left an [`Authenticated`]; without one the
/// headers are checked here.
pub fn authenticated(
    auth: Arc<Authenticator>,
) -> impl Filter<Extract = (Result<Principal, ApiError>,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<Authenticated>()
        .and(warp::header::headers_cloned())
        .and(warp::any().map(move || auth.clone()))
        .then(|edge: Option<Authenticated>, headers: http::HeaderMap, auth: Arc<Authenticator>| async move {
            match edge {
                Some(Authenticated(principal)) => Ok(principal),
                None => authenticate_request(&auth, &headers).await,
            }
        })
}

fn session_cookie(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("__session=").map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_sources() {
        assert_eq!(bearer(Some("Bearer abc"), None), Ok("abc".to_owned()));
        assert_eq!(bearer(Some("bearer  abc "), Some("zzz")), Ok("abc".to_owned()));
        assert_eq!(bearer(None, Some("zzz")), Ok("zzz".to_owned()));
        assert_eq!(bearer(Some("Basic abc"), None), Err(AuthError::Malformed));
        assert_eq!(bearer(Some("Bearer"), None), Err(AuthError::Malformed));
        assert_eq!(bearer(None, None), Err(AuthError::Missing));
    }

    #[test]
    fn session_cookie_is_found_among_others() {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::COOKIE, "a=1; __session=tok; b=2".parse().expect("header"));
        assert_eq!(session_cookie(&headers).as_deref(), Some("tok"));
    }
}
