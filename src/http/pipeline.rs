//! The one way through the server. Every request, the hottest included,
//! takes the same stages, in this order:
//!
//! 1. **where it comes from**: the `Host` and `Origin` checks
//!    ([`super::origin`]), before anything else is read;
//! 2. **CORS**: a preflight of an allowed origin is answered
//!    ([`super::cors`]);
//! 3. **route**: its operation, or 404 / 405 ([`super::router`]);
//! 4. **authenticate**: its bearer token, refused (401) unless the
//!    operation is public;
//! 5. **read the body**, for operations that have one, within
//!    `--max-body-bytes` (413) and the deadline (408); an operation that
//!    streams its body (an import) is handed it unread after stage 7
//!    instead, and reads it line by line ([`super::upload`]);
//! 6. **parse** it into the operation's typed command (400, 422);
//! 7. **admit**: the token's scope and the namespace's rate limit (403,
//!    429);
//! 8. **execute** against the storage interface, within the deadline
//!    (`--request-timeout`, 503 when past it);
//! 9. **observe**: counted and timed under its route template, errors
//!    kept in the recent errors ([`super::observe`]);
//! 10. **encode**: the answer, or the error as `{"detail": ...}`
//!     ([`super::error`]), with CORS headers for an allowed origin.
//!
//! A stage added here applies to every request by construction.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::Request;
use hyper::body::{Body as HttpBody, Bytes};
use hyper::header::AUTHORIZATION;
use tokio::time::{Instant, timeout_at};

use super::HandlerContext;
use super::cors::Cors;
use super::error::ApiError;
use super::ops::{Needs, Operation};
use super::reply::Response;
use super::request;
use super::router::{Found, Router};
use super::upload::Upload;
use crate::auth::{AuthError, Grants};

/// The server's service: the pipeline, shared by every connection.
#[derive(Clone)]
pub struct Service(Arc<Pipeline>);

struct Pipeline {
    ctx: HandlerContext,
    router: Router,
    cors: Option<Cors>,
}

/// An answer on its way: every answer is built by one future, boxed once.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl Service {
    pub fn new(ctx: HandlerContext) -> Self {
        let cors = Cors::new(&ctx.cors_origins);
        Service(Arc::new(Pipeline {
            ctx,
            router: Router::new(),
            cors,
        }))
    }

    /// What the operations share.
    pub fn context(&self) -> &HandlerContext {
        &self.0.ctx
    }

    /// What one connection calls for each of its requests.
    pub fn for_connection(&self) -> ConnectionService {
        ConnectionService(Arc::new(self.clone()))
    }
}

/// The pipeline as one connection serves it ([`Service::for_connection`]).
///
/// Why each connection holds its own `Arc`: every request's future owns a
/// reference to the pipeline, and a count of references shared by every
/// connection is a cache line written twice per request by whichever core
/// serves it, so it moved between the cores at nearly every request; the
/// count of a connection's own `Arc` is written by the core serving that
/// connection (docs/BENCHMARKS.md, "Cache lines every core wrote").
#[derive(Clone)]
pub struct ConnectionService(Arc<Service>);

impl<B> hyper::service::Service<Request<B>> for ConnectionService
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<B>) -> ResponseFuture {
        Box::pin(handle(self.0.clone(), request))
    }
}

/// Where stages 1 to 3 lead.
enum Routed<'r, 'p> {
    /// An allowed origin's preflight, answered.
    Preflight(Response),
    Found(Found<'r, 'p>),
}

/// Every stage of one request. One `async fn` for the whole (stages 1 to 3
/// are plain calls): each level of nested futures would copy the levels
/// below it once more per request.
async fn handle<B>(service: Arc<Service>, request: Request<B>) -> Result<Response, Infallible>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let pipeline = &*service.0;
    let start = Instant::now();
    let (parts, body) = request.into_parts();
    let (template, outcome) = match pipeline.route(&parts) {
        Err((template, refusal)) => (template, Err(refusal)),
        Ok(Routed::Preflight(answer)) => (None, Ok(answer)),
        Ok(Routed::Found(found)) => {
            let ctx = &pipeline.ctx;
            let authorization = parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes());
            let stages = Stages {
                ctx,
                request: request::Request::new(&parts, &found.params),
                caller: ctx.auth.authenticate(authorization),
                deadline: start + ctx.request_timeout,
            };
            (Some(found.template), found.op.run(stages, body).await)
        }
    };
    let observer = &pipeline.ctx.observer;
    let mut response = observer.finish(&parts.method, template, start.into_std(), outcome);
    if let Some(cors) = &pipeline.cors {
        cors.decorate(&parts.headers, &mut response);
    }
    Ok(response)
}

impl Pipeline {
    /// Stages 1 to 3: where the request comes from, CORS's preflight, its
    /// route.
    fn route<'r, 'p>(
        &'r self,
        parts: &'p hyper::http::request::Parts,
    ) -> Result<Routed<'r, 'p>, (Option<&'static str>, ApiError)> {
        self.ctx
            .sites
            .check(&parts.headers)
            .map_err(|e| (None, e))?;
        let preflight =
            (self.cors.as_ref()).and_then(|c| c.preflight(&parts.method, &parts.headers));
        if let Some(answer) = preflight {
            return Ok(Routed::Preflight(answer));
        }
        let found = self.router.find(&parts.method, parts.uri.path())?;
        Ok(Routed::Found(found))
    }
}

/// Stages 4 to 8 of one request, run for its operation by [`Op::run`](super::ops::Op::run).
pub struct Stages<'a> {
    ctx: &'a HandlerContext,
    request: request::Request<'a>,
    caller: Result<Grants, AuthError>,
    deadline: Instant,
}

impl Stages<'_> {
    pub async fn run<O, B>(self, body: B) -> Result<Response, ApiError>
    where
        O: Operation,
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let ctx = self.ctx;
        let caller = match self.caller {
            Ok(grants) => grants,
            Err(refusal) if O::PUBLIC => Grants::Anonymous(refusal),
            Err(refusal) => return Err(ApiError::Auth(refusal)),
        };
        if O::STREAMS_BODY {
            let mut command = O::parse(&self.request, &[])?;
            admit(ctx, &caller, command.needs())?;
            command.receive(Upload::new(body, ctx.request_timeout));
            // No deadline for the whole: the upload bounds each wait for
            // the body, the operation each write.
            return command.apply(ctx, &caller).await;
        }
        let body = match O::BODY {
            true => read_body(body, ctx.max_body_bytes, self.deadline, ctx.request_timeout).await?,
            false => Bytes::new(),
        };
        let command = O::parse_body(&self.request, body)?;
        admit(ctx, &caller, command.needs())?;
        match within(self.deadline, pin!(command.apply(ctx, &caller))).await {
            Some(outcome) => outcome,
            None => Err(ApiError::Overdue {
                limit: ctx.request_timeout,
            }),
        }
    }
}

/// Whether `caller` may run a command that `needs` this.
fn admit(ctx: &HandlerContext, caller: &Grants, needs: Needs<'_>) -> Result<(), ApiError> {
    match needs {
        Needs::Nothing => Ok(()),
        Needs::Caller => caller.require_token().map_err(ApiError::Auth),
        Needs::Namespace(namespace, access) => {
            caller.check(namespace, access).map_err(ApiError::Auth)?;
            Ok(ctx.rate_limits.check(namespace)?)
        }
        Needs::Admin(what) => caller.require_admin(what).map_err(ApiError::Auth),
    }
}

/// Reads a request body of at most `limit` bytes by `deadline`, so that a
/// client sending its body slowly cannot hold the server (408), nor send
/// an endless one (413).
async fn read_body<B>(
    body: B,
    limit: usize,
    deadline: Instant,
    timeout: Duration,
) -> Result<Bytes, ApiError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match within(deadline, pin!(whole(Limited::new(body, limit)))).await {
        None => Err(ApiError::RequestTimeout { limit: timeout }),
        Some(Ok(bytes)) => Ok(bytes),
        Some(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::PayloadTooLarge { limit })
        }
        Some(Err(e)) => Err(ApiError::MalformedJson(format!(
            "cannot read the body: {e}"
        ))),
    }
}

/// The whole of `body`'s data.
///
/// Why not `BodyExt::collect`: it keeps the frames in a queue, one
/// allocation per request, and a body of a few hundred bytes comes in one
/// frame, which is kept as it is here; only a body in several frames is
/// copied into one buffer.
async fn whole<B: HttpBody<Data = Bytes>>(body: B) -> Result<Bytes, B::Error> {
    let mut body = pin!(body);
    let mut first: Option<Bytes> = None;
    let mut joined: Option<Vec<u8>> = None;
    while let Some(frame) = body.frame().await {
        // Trailers carry no data.
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        match (&first, &mut joined) {
            (None, _) => first = Some(data),
            (Some(first), None) => joined = Some([&first[..], &data[..]].concat()),
            (Some(_), Some(joined)) => joined.extend_from_slice(&data),
        }
    }
    Ok(match joined {
        Some(joined) => joined.into(),
        None => first.unwrap_or_default(),
    })
}

/// `future`'s output, or `None` once `deadline` has passed.
///
/// The timer is armed only if the future does not complete at its first
/// poll: the embedded engine answers most operations at once, and a body
/// of a few hundred bytes arrives with its headers, so most requests then
/// cost no timer at all.
///
/// It takes the future pinned where the caller made it: an `async fn`
/// keeps its arguments in its own state, so a future passed by value and
/// pinned inside would be held twice, and the request's future is
/// allocated and copied at its whole size (docs/BENCHMARKS.md, "The size
/// of a request's future").
async fn within<F: Future>(deadline: Instant, mut future: Pin<&mut F>) -> Option<F::Output> {
    let first = poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(output) => Some(output),
        Poll::Pending => timeout_at(deadline, future).await.ok(),
    }
}
