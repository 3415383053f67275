//! Responses in the reference's (FastAPI's) shapes.

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
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

/// FastAPI routes accept exactly their declared methods, so `HEAD /health` is 405 there (axum
/// would answer it with the GET handler). The request is re-labelled with a method no route
/// declares, so known paths give 405 and unknown ones 404; hyper still omits the body because
/// the connection saw a HEAD request.
pub fn head_is_not_get(mut req: Request) -> Request {
    if req.method() == Method::HEAD {
        *req.method_mut() = Method::CONNECT;
    }
    req
}

/// Drops `HEAD` from `allow` headers: the routes are GET-only, as in the reference.
pub fn allow_without_head(mut res: Response) -> Response {
    if let Some(allow) = res
        .headers()
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
    {
        let kept: Vec<&str> = allow
            .split(',')
            .map(str::trim)
            .filter(|m| !m.eq_ignore_ascii_case("HEAD"))
            .collect();
        if let Ok(value) = HeaderValue::from_str(&kept.join(", ")) {
            res.headers_mut().insert(header::ALLOW, value);
        }
    }
    res
}
