//! Responses in the reference's (FastAPI's) shapes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use envtorch_wire::http::{METHOD_NOT_ALLOWED, NOT_FOUND};

/// A JSON response with an already-serialized body.
pub fn json(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// 200 with a JSON body.
pub fn ok(body: String) -> Response {
    json(StatusCode::OK, body)
}

/// The reference's unhandled-exception answer: 500, `text/plain`, `Internal Server Error`.
pub fn internal_error() -> Response {
    let mut res = (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// 404 `{"detail":"Not Found"}`.
pub async fn not_found() -> Response {
    json(StatusCode::NOT_FOUND, NOT_FOUND.to_owned())
}

/// 405 `{"detail":"Method Not Allowed"}` (axum adds the `allow` header).
pub async fn method_not_allowed() -> Response {
    json(
        StatusCode::METHOD_NOT_ALLOWED,
        METHOD_NOT_ALLOWED.to_owned(),
    )
}
