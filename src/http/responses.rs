//! Error responses shared by several operations, for their `#[utoipa::path]` (each operation
//! lists every status it can answer; the ones with a meaning of their own are written there).

use utoipa::IntoResponses;

use super::schema::ErrorBody;

/// 400 `bad_request`: a path segment that is not UTF-8 once percent-decoded.
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "bad_request: the id is not valid UTF-8 once percent-decoded"
)]
#[allow(dead_code)]
pub struct BadPath(ErrorBody);

/// 400 `bad_request`: an unknown query parameter (named in `field`) or a malformed query string.
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "bad_request: an unknown query parameter (named in `field`), a malformed query string, or an id that \
                   is not valid UTF-8"
)]
#[allow(dead_code)]
pub struct BadQuery(ErrorBody);

/// 401: a mutating request without a valid token, on a server started with tokens.
#[derive(IntoResponses)]
#[response(
    status = 401,
    description = "unauthorized: the server runs with tokens (WIDTHLAB_TOKENS) and the request has no valid \
                   Authorization: Bearer <token>; WWW-Authenticate names the scheme",
    headers(("WWW-Authenticate" = String, description = "Bearer realm=\"widthlab\""))
)]
#[allow(dead_code)]
pub struct Unauthorized(ErrorBody);

/// 403: the token is valid, but the job is someone else's.
#[derive(IntoResponses)]
#[response(
    status = 403,
    description = "forbidden: only the job's owner (the token that submitted it) or an admin token may change it"
)]
#[allow(dead_code)]
pub struct Forbidden(ErrorBody);

/// 404: no job with this id.
#[derive(IntoResponses)]
#[response(status = 404, description = "not_found: no job with this id")]
#[allow(dead_code)]
pub struct JobNotFound(ErrorBody);

/// 408: the request took longer than the server's per-request limit.
#[derive(IntoResponses)]
#[response(
    status = 408,
    description = "timeout: the request took longer than the server's limit (--request-timeout-secs, 30 s by default)"
)]
#[allow(dead_code)]
pub struct Timeout(ErrorBody);

/// 500: a fault of the server (logged, never detailed in the answer).
#[derive(IntoResponses)]
#[response(
    status = 500,
    description = "internal: a fault of the server (logged; the answer says no more)"
)]
#[allow(dead_code)]
pub struct Internal(ErrorBody);

/// 503 when a download's permits stay taken: nothing was read.
#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "busy: every permit for reading kept samples is held by downloads in progress (each holds its \
                   rendered text until it is sent, so their memory is bounded); nothing was read. Retry-After: 5",
    headers(("Retry-After" = u32, description = "Seconds to wait before trying again"))
)]
#[allow(dead_code)]
pub struct Busy(ErrorBody);

/// 503 on a write: the database's disk is full; nothing was changed.
#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "storage_full: the server cannot store anything now (its disk is full); nothing was changed. \
                   Retry-After: 30. busy: the database stayed locked by other writes for longer than a request \
                   waits; nothing was changed. Retry-After: 5",
    headers(("Retry-After" = u32, description = "Seconds to wait before trying again"))
)]
#[allow(dead_code)]
pub struct StorageFull(ErrorBody);

/// 413: a declared body over the limit, refused before it is read.
#[derive(IntoResponses)]
#[response(
    status = 413,
    description = "payload_too_large: the request carries a body over the limit (--max-body-bytes, 1 MiB by default)"
)]
#[allow(dead_code)]
pub struct PayloadTooLarge(ErrorBody);
