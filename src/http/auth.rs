//! Bearer tokens for mutating endpoints; reads stay open. The caller's identity (the token's
//! name, and whether it is an admin token) goes into the request for the handlers, which let
//! only a job's owner or an admin cancel or delete it.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::config::{Auth, Token};
use crate::jobs::Caller;

/// The token among `tokens` whose secret equals `presented`. Compares fixed-length digests in
/// constant time and checks every token, so timing reveals neither which token matched nor its
/// length.
pub fn matching<'a>(tokens: &[&'a Token], presented: &str) -> Option<&'a Token> {
    let p = Sha256::digest(presented.as_bytes());
    let mut found = None;
    for t in tokens {
        let hit: bool = Sha256::digest(t.secret.as_bytes()).ct_eq(&p).into();
        if hit && found.is_none() {
            found = Some(*t);
        }
    }
    found
}

/// The secret of an `Authorization: Bearer <secret>` header (the scheme is case-insensitive,
/// RFC 7235 section 2.1).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, secret) = value.split_once(char::is_whitespace)?;
    scheme.eq_ignore_ascii_case("bearer").then(|| secret.trim())
}

pub async fn require_token(State(state): State<AppState>, mut req: Request<Body>, next: Next) -> Response {
    let read_only = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let caller = match &*state.auth {
        Auth::Open => Caller::open(),
        Auth::Tokens { .. } if read_only => Caller::reader(),
        Auth::Tokens { users, admins } => {
            let all: Vec<&Token> = users.iter().chain(admins).collect();
            let found = bearer(req.headers()).and_then(|p| matching(&all, p));
            match found {
                Some(t) => Caller {
                    name: Some(t.name.clone()),
                    admin: admins.iter().any(|a| a.name == t.name),
                },
                None => return ApiError::Unauthorized.into_response(),
            }
        }
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_configured_tokens() {
        let owned: [Token; 2] = ["alpha".parse().unwrap(), "bob:beta-longer".parse().unwrap()];
        let tokens: Vec<&Token> = owned.iter().collect();
        assert_eq!(
            matching(&tokens, "alpha").map(|t| t.name.as_str()),
            Some(owned[0].name.as_str())
        );
        assert_eq!(matching(&tokens, "beta-longer").map(|t| t.name.as_str()), Some("bob"));
        assert!(matching(&tokens, "alph").is_none());
        assert!(matching(&tokens, "").is_none());
        assert!(matching(&[], "alpha").is_none());
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer s3", "bearer s3", "BEARER   s3 ", "bEaReR\ts3"] {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            assert_eq!(bearer(&h), Some("s3"), "{value:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Basic s3".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
