//! The operations of the API, one file each.
//!
//! A file holds everything of its operation, as a command of tokio's
//! mini-redis does: its route, how a request becomes a typed command
//! ([`Operation::parse`]), the access it needs ([`Operation::needs`]), how it
//! is carried out against the storage interface ([`Operation::apply`]), its
//! typed answer (from [`crate::api`]) and its OpenAPI description.
//!
//! Everything around them is the pipeline's ([`super::pipeline`]), the
//! same for every request: where it comes from, its token, its body, its
//! deadline, counting it, and the error answers.
//!
//! # Adding an operation
//!
//! Write `ops/NAME.rs` with a type implementing [`Operation`], and list it
//! once in [`operations!`] below: the router, the dispatch and the OpenAPI
//! document are generated from that list. Then give the storage interface
//! ([`crate::backend::KvBackend`]) what it needs, in each backend.

use std::future::Future;

use hyper::Method;
use hyper::body::Bytes;
use utoipa::openapi::path::{HttpMethod, Operation as OpenApiOperation};

use super::HandlerContext;
use super::error::ApiError;
use super::reply::Response;
use super::request::Request;
use super::upload::Upload;
use crate::auth::{Access, Grants};

mod batch;
mod clear;
mod compact;
mod console;
mod delete;
mod docs;
mod expire;
mod export;
mod get;
mod health;
mod import;
mod incr;
mod keys;
mod metrics;
mod namespace_keys;
mod namespaces;
mod openapi;
mod performance;
mod quota;
mod recent_errors;
mod set;
mod set_quota;
mod stats;
mod ttl;
mod watch;

pub use set::{MAX_TTL_SECS, SetRequest};

/// One operation of the API.
pub trait Operation: Sized + Send {
    /// The method it answers (`GET` routes answer `HEAD` too).
    const METHOD: Method;
    /// Its route templates, in the router's syntax (`{name}` for one path
    /// segment, `{*name}` for the rest of the path).
    const PATHS: &'static [&'static str];
    /// Whether it reads a body. Bodies are read after the token is
    /// checked, within `--max-body-bytes` and the request's deadline.
    const BODY: bool = false;
    /// Whether it takes its body as a stream instead of whole: the body is
    /// handed over unread by [`Self::receive`], after the token check, the
    /// parsing of the request's head and the admission, and read while the
    /// command is applied, in bounded memory whatever its size (an import).
    /// `--max-body-bytes` then bounds each line, and `--request-timeout`
    /// each wait rather than the whole request ([`super::upload`]).
    const STREAMS_BODY: bool = false;
    /// Whether it answers without a valid token (the console, the
    /// documentation, liveness). Every other operation refuses a missing
    /// or unknown token (401) before anything else is read.
    const PUBLIC: bool = false;

    /// The typed command of a request; `body` is empty unless [`Self::BODY`].
    fn parse(request: &Request<'_>, body: &[u8]) -> Result<Self, ApiError>;

    /// [`Self::parse`], given the body itself: a command may keep parts of
    /// it without copying them (`POST /set` keeps its key and value in the
    /// body it was sent in).
    fn parse_body(request: &Request<'_>, body: Bytes) -> Result<Self, ApiError> {
        Self::parse(request, &body)
    }

    /// What the caller must be allowed.
    fn needs(&self) -> Needs<'_>;

    /// Takes the unread body, for an operation that [`Self::STREAMS_BODY`].
    fn receive(&mut self, _body: Upload) {}

    /// Carries the command out; `caller` passed [`Self::needs`].
    fn apply(
        self,
        ctx: &HandlerContext,
        caller: &Grants,
    ) -> impl Future<Output = Result<Response, ApiError>> + Send;

    /// Its description for `/openapi.json` (see [`documented`]), or `None`
    /// for a route outside the API.
    fn openapi() -> Option<Documented> {
        None
    }
}

/// What a command needs of its caller, checked by the pipeline between
/// parsing and applying.
pub enum Needs<'a> {
    /// Nothing: any caller, even without a valid token.
    Nothing,
    /// A valid token of any scope; the operation shows the caller only
    /// what its grants allow (`/stats`, `/namespaces`).
    Caller,
    /// This access to this namespace (`None`: the default one), within the
    /// namespace's rate limit.
    Namespace(Option<&'a str>, Access),
    /// An admin token; names what is refused otherwise.
    Admin(&'static str),
}

/// An operation's OpenAPI path, method and description.
pub type Documented = (String, Vec<HttpMethod>, OpenApiOperation);

/// The description `#[utoipa::path(..., impl_for = T)]` wrote for `T`.
pub fn documented<T: utoipa::Path>() -> Option<Documented> {
    Some((T::path(), T::methods(), T::operation()))
}

/// Lists the operations once; generates [`Op`], the one enum naming them,
/// the router's table ([`ROUTES`]), the dispatch ([`Op::run`]) and the
/// OpenAPI paths ([`documented_operations`]).
macro_rules! operations {
    ($($name:ident => $type:ty,)*) => {
        /// Every operation of the API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Op {
            $($name,)*
        }

        /// `(operation, method, route templates)` of every operation.
        pub const ROUTES: &[(Op, Method, &[&str])] = &[
            $((Op::$name, <$type as Operation>::METHOD, <$type as Operation>::PATHS),)*
        ];

        impl Op {
            /// Runs the request through its operation's stages
            /// ([`super::pipeline::run`]).
            pub async fn run<B>(
                self,
                stage: super::pipeline::Stages<'_>,
                body: B,
            ) -> Result<Response, ApiError>
            where
                B: hyper::body::Body<Data = hyper::body::Bytes> + Send + 'static,
                B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
            {
                match self {
                    $(Op::$name => stage.run::<$type, B>(body).await,)*
                }
            }
        }

        /// The OpenAPI description of every operation of the API.
        pub fn documented_operations() -> Vec<Documented> {
            [$(<$type as Operation>::openapi(),)*].into_iter().flatten().collect()
        }
    };
}

operations! {
    Set => set::Set,
    Get => get::Get,
    Delete => delete::Delete,
    Incr => incr::Incr,
    Batch => batch::Batch,
    Ttl => ttl::Ttl,
    Expire => expire::Expire,
    Watch => watch::Watch,
    Keys => keys::Keys,
    Namespaces => namespaces::Namespaces,
    NamespaceKeys => namespace_keys::NamespaceKeys,
    Export => export::Export,
    Import => import::Import,
    Clear => clear::Clear,
    Stats => stats::Stats,
    Health => health::Health,
    Compact => compact::Compact,
    Quota => quota::Quota,
    SetQuota => set_quota::SetQuota,
    Performance => performance::Performance,
    RecentErrors => recent_errors::RecentErrors,
    Metrics => metrics::Metrics,
    OpenApiDocument => openapi::OpenApiDocument,
    Docs => docs::Docs,
    DocsFile => docs::DocsFile,
    Home => console::Home,
    Console => console::Console,
    ConsoleFile => console::ConsoleFile,
}
