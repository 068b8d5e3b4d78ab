//! Optional bearer tokens for mutating endpoints (`WIDTHLAB_TOKENS`); reads stay open.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Method, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::config::Token;

/// True if `presented` equals one of `tokens`. Compares fixed-length digests in constant time
/// and checks every token, so timing reveals neither which token matched nor its length.
pub fn token_matches(tokens: &[&Token], presented: &str) -> bool {
    let p = Sha256::digest(presented.as_bytes());
    tokens
        .iter()
        .fold(subtle::Choice::from(0u8), |acc, t| {
            acc | Sha256::digest(t.0.as_bytes()).ct_eq(&p)
        })
        .into()
}

pub async fn require_token(State(state): State<AppState>, req: Request<Body>, next: Next) -> Response {
    let tokens = state.config.tokens();
    let read_only = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if tokens.is_empty() || read_only {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(t) if token_matches(&tokens, t) => next.run(req).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_configured_tokens() {
        let owned = [Token("alpha".into()), Token("beta-longer".into())];
        let tokens: Vec<&Token> = owned.iter().collect();
        assert!(token_matches(&tokens, "alpha"));
        assert!(token_matches(&tokens, "beta-longer"));
        assert!(!token_matches(&tokens, "alph"));
        assert!(!token_matches(&tokens, ""));
        assert!(!token_matches(&[], "alpha"));
    }
}
