//! The hot path: `GET /get/{key}` and `POST /set` in their plain shape,
//! answered without going through axum's router.
//!
//! Why: these two routes carry nearly all of a key-value server's traffic,
//! and on them axum's per-request machinery (routing, a boxed clone of the
//! route's service, an extensions map for `MatchedPath`, the extractors,
//! the boxed future of the `from_fn` middleware, a boxed response body)
//! cost about as much as the store and the log together. Measured in
//! docs/BENCHMARKS.md.
//!
//! Behaviour stays the router's by construction:
//!
//! - only requests whose meaning is plain take the hot path: a key of
//!   unescaped URL characters (no `%`, not starting with `/`), a query that
//!   is absent or exactly `ns=NAME` with a valid name, and no CORS
//!   configured (its layer adds headers to every answer). Everything else
//!   goes to the router, exactly as before;
//! - the checks run in the router's order (where the request comes from,
//!   [`SiteCheck::check`](super::origin::SiteCheck::check), then the token,
//!   then the handler's), through the same functions
//!   ([`handlers::get_answer`], [`handlers::set_answer`]);
//! - requests are counted and timed into the same [`Observer`], under the
//!   same route templates, errors included.
//!
//! The tests at the bottom send the same requests both ways and compare
//! the answers byte for byte.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use axum::http::{Method, Request, Response, StatusCode};
use axum::response::IntoResponse;
use http_body_util::{Either, Full};

use super::error::ApiError;
use super::handlers;
use super::{AppState, Observer};
use crate::backend::ready_now;
use crate::store::validate_namespace;

/// The route templates the hot requests are counted under: the router's.
const GET_ROUTE: &str = "/get/{*key}";
const SET_ROUTE: &str = "/set";

/// The body of an answer: a plain buffer from the hot path, axum's boxed
/// body from the router.
pub type ResponseBody = Either<Full<Bytes>, Body>;

/// The server's service: the hot path in front of the router.
#[derive(Clone)]
pub struct Service {
    router: Router,
    state: AppState,
    observer: Arc<Observer>,
    /// Off when CORS is configured.
    hot: bool,
}

/// A request the hot path answers.
enum Hot<'a> {
    Get {
        key: &'a str,
        namespace: Option<&'a str>,
    },
    Set,
}

impl Service {
    pub(super) fn new(router: Router, state: AppState, observer: Arc<Observer>) -> Self {
        let hot = state.cors_origins.is_empty();
        Service {
            router,
            state,
            observer,
            hot,
        }
    }

    /// Which hot request this is, or `None` for the router.
    fn classify<'a, B>(&self, request: &'a Request<B>) -> Option<Hot<'a>> {
        if !self.hot {
            return None;
        }
        let uri = request.uri();
        let namespace = plain_ns_query(uri.query())?;
        match *request.method() {
            Method::GET => {
                let key = uri.path().strip_prefix("/get/")?;
                is_plain_key(key).then_some(Hot::Get { key, namespace })
            }
            Method::POST if uri.path() == SET_ROUTE => Some(Hot::Set),
            _ => None,
        }
    }

    /// The answer to a GET, if the backend gives it at once; `None` when it
    /// would wait, and the router then answers (asking the backend again:
    /// a read may be repeated).
    ///
    /// Why poll in place: the embedded backend never waits, and polling its
    /// future once here, with no runtime's waker, answers inside `call`
    /// with no boxed future. A backend that waits (across a network) loses
    /// only the first poll.
    fn get<B>(
        &self,
        request: &Request<B>,
        key: &str,
        namespace: Option<&str>,
    ) -> Option<ResponseFuture> {
        let start = Instant::now();
        let caller = self.state.sites.check(request.headers()).and_then(|()| {
            (self.state.auth)
                .authenticate(authorization(request.headers()))
                .map_err(ApiError::Auth)
        });
        let answer = match caller {
            Ok(caller) => ready_now(handlers::get_answer(&self.state, &caller, key, namespace))?,
            Err(e) => Err(e),
        };
        Some(match answer {
            Ok(body) => ResponseFuture::Ready(Some(answered(
                &self.observer,
                &Method::GET,
                GET_ROUTE,
                start,
                body,
            ))),
            Err(e) => self.refused(&Method::GET, GET_ROUTE, start, e),
        })
    }

    fn set<B>(&self, request: Request<B>) -> ResponseFuture
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let start = Instant::now();
        let (parts, body) = request.into_parts();
        if let Err(refusal) = self.state.sites.check(&parts.headers) {
            return self.refused(&Method::POST, SET_ROUTE, start, refusal);
        }
        let caller = match self.state.auth.authenticate(authorization(&parts.headers)) {
            Ok(caller) => caller,
            Err(e) => {
                return self.refused(&Method::POST, SET_ROUTE, start, ApiError::Auth(e));
            }
        };
        let state = self.state.clone();
        let observer = self.observer.clone();
        ResponseFuture::pending(async move {
            // `classify` saw the query: absent, or `ns=` and a valid name.
            let namespace = parts.uri.query().and_then(|q| q.strip_prefix("ns="));
            match handlers::set_answer(&state, &caller, namespace, Body::new(body)).await {
                Ok(body) => answered(&observer, &Method::POST, SET_ROUTE, start, body),
                Err(e) => failed(&observer, &Method::POST, SET_ROUTE, start, e),
            }
        })
    }

    /// An error of the hot path, answered at once.
    fn refused(
        &self,
        method: &Method,
        route: &'static str,
        start: Instant,
        error: ApiError,
    ) -> ResponseFuture {
        ResponseFuture::Ready(Some(failed(&self.observer, method, route, start, error)))
    }

    fn route<B>(&self, request: Request<B>) -> ResponseFuture
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        // A `Router` is always ready (its `poll_ready` returns at once), and
        // cloning it copies one `Arc`.
        let answer = tower_service::Service::call(&mut self.router.clone(), request);
        ResponseFuture::pending(async move {
            match answer.await {
                Ok(response) => response.map(Either::Right),
                Err(never) => match never {},
            }
        })
    }
}

impl<B> hyper::service::Service<Request<B>> for Service
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<B>) -> ResponseFuture {
        match self.classify(&request) {
            Some(Hot::Get { key, namespace }) => match self.get(&request, key, namespace) {
                Some(answer) => answer,
                None => self.route(request),
            },
            Some(Hot::Set) => self.set(request),
            None => self.route(request),
        }
    }
}

/// The future of an answer. A GET is answered inside `call`, so its answer
/// is ready at once and needs no boxed future.
pub enum ResponseFuture {
    Ready(Option<Response<ResponseBody>>),
    Pending(Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send>>),
}

impl ResponseFuture {
    fn pending(future: impl Future<Output = Response<ResponseBody>> + Send + 'static) -> Self {
        ResponseFuture::Pending(Box::pin(future))
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            ResponseFuture::Ready(answer) => Poll::Ready(Ok(answer
                .take()
                .expect("an answer future is not polled after it completed"))),
            ResponseFuture::Pending(future) => future.as_mut().poll(cx).map(Ok),
        }
    }
}

/// A hot request answered: counted as the router's middleware counts it.
fn answered(
    observer: &Observer,
    method: &Method,
    route: &'static str,
    start: Instant,
    body: Vec<u8>,
) -> Response<ResponseBody> {
    observer.record(Some(route), method, StatusCode::OK, start.elapsed());
    json(body)
}

/// A hot request refused: counted and kept in the recent errors as the
/// router's middleware would.
fn failed(
    observer: &Observer,
    method: &Method,
    route: &'static str,
    start: Instant,
    error: ApiError,
) -> Response<ResponseBody> {
    let response = observer.finish(method, Some(route), start, error.into_response());
    response.map(Either::Right)
}

fn authorization(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get(AUTHORIZATION).map(HeaderValue::as_bytes)
}

/// A 200 answer with a JSON body, as the handlers' `json_response`.
fn json(body: Vec<u8>) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The namespace of a query that is absent (`Some(None)`) or exactly
/// `ns=NAME` with a valid name (`Some(Some(NAME))`); `None` for anything
/// else, which the router decodes and judges.
fn plain_ns_query(query: Option<&str>) -> Option<Option<&str>> {
    match query {
        None => Some(None),
        Some(query) => {
            let ns = query.strip_prefix("ns=")?;
            validate_namespace(ns).is_ok().then_some(Some(ns))
        }
    }
}

/// A key that reads the same before and after the router's percent
/// decoding: unreserved and sub-delimiter characters, `:`, `@` and `/`
/// (but not first).
fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('/')
        && key.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'@'
                        | b'/'
                )
        })
}

#[cfg(test)]
mod tests {
    //! Every request here goes both ways, through the hot path and through
    //! the router alone, against the same store: the answers must be the
    //! same, status, headers and body.

    use std::time::Duration;

    use axum::http::header::CONTENT_LENGTH;
    use http_body_util::BodyExt;
    use hyper::service::Service as _;

    use super::*;
    use crate::auth::{Access, Authenticator, TokenFile};
    use crate::embedded::{EmbeddedBackend, EmbeddedOptions};
    use crate::http::origin::SiteCheck;
    use crate::http::{HandlerContext, RateLimits};
    use crate::store::StoreConfig;
    use crate::wal::{AutoCompaction, FsyncPolicy, WalOptions};

    struct Fixture {
        hot: Service,
        routed: Service,
        _dir: tempfile::TempDir,
    }

    /// A server with one token, for namespace `team`, if `token` is given.
    fn fixture(token: Option<&mut String>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let options = EmbeddedOptions {
            data_dir: dir.path().to_owned(),
            store: StoreConfig::default(),
            wal: WalOptions {
                fsync: FsyncPolicy::No,
            },
            repair: false,
            auto_compaction: AutoCompaction {
                min_bytes: u64::MAX,
                ratio: 2.0,
            },
        };
        let (db, _) = EmbeddedBackend::open(&options).unwrap();
        let tokens = TokenFile::in_data_dir(dir.path());
        if let Some(token) = token {
            *token = tokens.create(vec!["team".into()], Access::Write).unwrap().0;
        }
        let db = Arc::new(crate::backend::Backend::from(db));
        let state = AppState::new(HandlerContext {
            views: crate::http::ServerViews::new(db.clone()),
            metrics_namespace_limit: 100,
            backend: db,
            max_body_bytes: 256,
            auth: Authenticator::open(tokens).unwrap(),
            rate_limits: Arc::new(RateLimits::default()),
            cors_origins: Vec::new(),
            sites: Arc::new(SiteCheck::new(
                std::net::Ipv4Addr::LOCALHOST.into(),
                &[],
                &[],
            )),
            request_timeout: Duration::from_secs(5),
        });
        let hot = crate::http::service(state);
        let routed = Service {
            hot: false,
            ..hot.clone()
        };
        Fixture {
            hot,
            routed,
            _dir: dir,
        }
    }

    type ResponseFuture = (StatusCode, HeaderMap, Bytes);

    /// The answer as it goes on the wire: hyper writes a `content-length`
    /// from the body's size where the answer has none.
    async fn send(service: &Service, request: Request<Full<Bytes>>) -> ResponseFuture {
        let response = service.call(request).await.unwrap();
        let (mut parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        parts
            .headers
            .entry(CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(body.len()));
        (parts.status, parts.headers, body)
    }

    fn request(method: &str, uri: &str, token: Option<&str>, body: &str) -> Request<Full<Bytes>> {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        builder
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    }

    /// Sends the request through the hot path, then through the router;
    /// asserts the answers are equal and returns it.
    async fn both(
        f: &Fixture,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: &str,
    ) -> ResponseFuture {
        let hot = send(&f.hot, request(method, uri, token, body)).await;
        let routed = send(&f.routed, request(method, uri, token, body)).await;
        assert_eq!(hot, routed, "{method} {uri} {body}");
        hot
    }

    #[test]
    fn only_plain_requests_take_the_hot_path() {
        let f = fixture(None);
        let hot =
            |method: &str, uri: &str| f.hot.classify(&request(method, uri, None, "")).is_some();
        assert!(hot("GET", "/get/key:1"));
        assert!(hot("GET", "/get/a/b.c?ns=team-1"));
        assert!(hot("POST", "/set"));
        assert!(hot("POST", "/set?ns=team"));
        assert!(!hot("GET", "/get/a%20b"), "escaped key");
        assert!(!hot("GET", "/get//a"), "key starting with a slash");
        assert!(!hot("GET", "/get/"), "no key");
        assert!(!hot("GET", "/get/k?ns=team&x=1"), "other parameters");
        assert!(!hot("GET", "/get/k?ns="), "empty namespace");
        assert!(!hot("GET", "/get/k?"), "empty query");
        assert!(!hot("HEAD", "/get/k"));
        assert!(!hot("POST", "/set/"));
        assert!(!hot("PUT", "/set"));
        assert!(
            f.routed
                .classify(&request("GET", "/get/k", None, ""))
                .is_none()
        );
    }

    #[tokio::test]
    async fn gets_and_sets_answer_as_the_router_does() {
        let f = fixture(None);
        let set = |key: &str, ns: &str| format!(r#"{{"key":"{key}","value":{{"n":[1,2]}}{ns}}}"#);
        for (uri, body) in [
            ("/set", set("plain", "")),
            ("/set", set("a/b:c", "")),
            ("/set", set("trailing/", "")),
            ("/set?ns=team", set("k", "")),
            ("/set?ns=team", set("k2", r#","namespace":"other""#)),
            ("/set", set("t", r#","ttl":3600"#)),
        ] {
            let (status, _, _) = both(&f, "POST", uri, None, &body).await;
            assert_eq!(status, StatusCode::OK, "{uri} {body}");
        }
        for uri in [
            "/get/plain",
            "/get/a/b:c",
            "/get/trailing/",
            "/get/k?ns=team",
            "/get/k2?ns=other",
            "/get/t",
        ] {
            let (status, headers, body) = both(&f, "GET", uri, None, "").await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert_eq!(headers[CONTENT_TYPE], "application/json");
            let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(answer["value"], serde_json::json!({"n": [1, 2]}), "{uri}");
        }
        let long = format!("/get/{}", "k".repeat(2000));
        for (uri, want) in [
            ("/get/missing", StatusCode::NOT_FOUND),
            ("/get/k", StatusCode::NOT_FOUND),
            ("/get/plain?ns=team", StatusCode::NOT_FOUND),
            ("/get/k?ns=default", StatusCode::NOT_FOUND),
            // Too long to have been stored: not found, both ways.
            (long.as_str(), StatusCode::NOT_FOUND),
        ] {
            let (status, _, body) = both(&f, "GET", uri, None, "").await;
            assert_eq!(status, want, "{uri}: {body:?}");
        }
        for (uri, body, want) in [
            ("/set", "{not json", StatusCode::BAD_REQUEST),
            ("/set", r#"{"value":1}"#, StatusCode::UNPROCESSABLE_ENTITY),
            (
                "/set",
                r#"{"key":"","value":1}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "/set",
                r#"{"key":"k","value":1,"ttl":-1}"#,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "/set",
                &set(&"x".repeat(300), ""),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
        ] {
            let (status, _, answer) = both(&f, "POST", uri, None, body).await;
            assert_eq!(status, want, "{uri} {body}: {answer:?}");
        }
    }

    #[tokio::test]
    async fn tokens_are_checked_as_the_router_checks_them() {
        let mut token = String::new();
        let f = fixture(Some(&mut token));
        let ok = Some(token.as_str());
        let body = r#"{"key":"k","value":1}"#;
        for (method, uri, token, body, want) in [
            ("POST", "/set?ns=team", ok, body, StatusCode::OK),
            ("GET", "/get/k?ns=team", ok, "", StatusCode::OK),
            ("GET", "/get/k?ns=team", None, "", StatusCode::UNAUTHORIZED),
            (
                "GET",
                "/get/k?ns=team",
                Some("wrong"),
                "",
                StatusCode::UNAUTHORIZED,
            ),
            ("GET", "/get/k?ns=other", ok, "", StatusCode::FORBIDDEN),
            ("GET", "/get/k", ok, "", StatusCode::FORBIDDEN),
            ("POST", "/set", None, body, StatusCode::UNAUTHORIZED),
            ("POST", "/set", ok, body, StatusCode::FORBIDDEN),
            ("POST", "/set?ns=other", ok, body, StatusCode::FORBIDDEN),
        ] {
            let (status, headers, answer) = both(&f, method, uri, token, body).await;
            assert_eq!(status, want, "{method} {uri}: {answer:?}");
            if want == StatusCode::UNAUTHORIZED {
                assert_eq!(headers["www-authenticate"], "Bearer");
            }
        }
    }

    #[tokio::test]
    async fn foreign_sites_are_refused_as_the_router_refuses_them() {
        let f = fixture(None);
        let body = r#"{"key":"k","value":1}"#;
        let with = |method: &str, uri: &str, header: (&'static str, &'static str)| {
            let mut request = request(method, uri, None, body);
            request
                .headers_mut()
                .insert(header.0, HeaderValue::from_static(header.1));
            request
        };
        for header in [
            ("origin", "https://evil.example"),
            ("origin", "null"),
            ("host", "evil.example:8000"),
        ] {
            for (method, uri) in [("POST", "/set?ns=team"), ("GET", "/get/k?ns=team")] {
                let hot = send(&f.hot, with(method, uri, header)).await;
                let routed = send(&f.routed, with(method, uri, header)).await;
                assert_eq!(hot, routed, "{method} {uri} {header:?}");
                assert_eq!(hot.0, StatusCode::FORBIDDEN, "{method} {uri} {header:?}");
            }
        }
        // Nothing was written; the server's own origin and name pass.
        let (status, _, _) = both(&f, "GET", "/get/k?ns=team", None, "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let own = with("POST", "/set?ns=team", ("host", "localhost:8000"));
        assert_eq!(send(&f.hot, own).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn hot_requests_are_counted_under_the_routers_templates() {
        let f = fixture(None);
        send(
            &f.hot,
            request("POST", "/set", None, r#"{"key":"k","value":1}"#),
        )
        .await;
        send(&f.hot, request("GET", "/get/k", None, "")).await;
        send(&f.hot, request("GET", "/get/nope", None, "")).await;
        let routes = f.hot.observer.routes();
        let counts = |route: &str| {
            routes
                .iter()
                .find(|(label, _)| *label == route)
                .map(|(_, stats)| stats.requests())
                .unwrap_or_default()
        };
        assert_eq!(counts("/set"), vec![("POST", Some(200), 1)]);
        assert_eq!(
            counts("/get/{key}"),
            vec![("GET", Some(200), 1), ("GET", Some(404), 1)]
        );
        let errors = f.hot.observer.recent_errors();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].route.as_str(), errors[0].status),
            ("/get/{key}", 404)
        );
        assert_eq!(errors[0].detail, "Key not found");
    }
}
