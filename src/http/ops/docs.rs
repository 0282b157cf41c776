//! `GET /docs` and `GET /docs/{file}`: interactive documentation (Swagger
//! UI) of `/openapi.json` that works with no network: its files are
//! compiled into the binary; nothing loads from another host.
//!
//! The files are in `assets/swagger-ui/` (see its README for their origin
//! and how to update them).

use hyper::Method;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};

use super::{Documented, Needs, Operation, documented};
use crate::auth::Grants;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;

const INDEX: &str = include_str!("../../../assets/swagger-ui/index.html");

/// `(name, content type, bytes)` of every file under `/docs/`.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/swagger-ui/swagger-ui-bundle.js"),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/swagger-ui/swagger-ui.css"),
    ),
    (
        "swagger-initializer.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/swagger-ui/swagger-initializer.js"),
    ),
    (
        "LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../../assets/swagger-ui/LICENSE"),
    ),
    (
        "NOTICE",
        "text/plain; charset=utf-8",
        include_bytes!("../../../assets/swagger-ui/NOTICE"),
    ),
    (
        "swagger-ui-bundle.js.LICENSE.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../../../assets/swagger-ui/swagger-ui-bundle.js.LICENSE.txt"),
    ),
];

/// `GET /docs`: the page.
pub struct Docs;

impl Operation for Docs {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/docs"];
    const PUBLIC: bool = true;

    fn parse(_request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(Docs)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Nothing
    }

    async fn apply(self, _ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        Ok(index())
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

/// `GET /docs/{file}`: one of the page's files.
pub struct DocsFile {
    name: String,
}

impl Operation for DocsFile {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/docs/{file}"];
    const PUBLIC: bool = true;

    fn parse(request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(DocsFile {
            name: request.param("file")?.into_owned(),
        })
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Nothing
    }

    async fn apply(self, _ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        if self.name == "index.html" {
            return Ok(index());
        }
        match FILES.iter().find(|(file, _, _)| *file == self.name) {
            // The files change only with the binary.
            Some((_, content_type, bytes)) => Ok(reply::bytes(
                *bytes,
                &[
                    (CONTENT_TYPE, content_type),
                    (CACHE_CONTROL, "public, max-age=86400"),
                ],
            )),
            None => Err(ApiError::NoRoute {
                method: "GET".into(),
                path: format!("/docs/{}", self.name),
            }),
        }
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

fn index() -> Response {
    reply::bytes(
        INDEX,
        &[
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
    )
}

#[utoipa::path(
    get, path = "/docs", tag = "operability", impl_for = Docs,
    responses((status = 200, description = "Interactive documentation (Swagger UI), served with no network", body = String, content_type = "text/html"))
)]
#[allow(dead_code)]
fn document_page() {}

#[utoipa::path(
    get, path = "/docs/{file}", tag = "operability", impl_for = DocsFile,
    params(("file" = String, Path, description = "A file of the documentation page, such as `swagger-ui.css`")),
    responses(
        (status = 200, description = "The file", body = String, content_type = "text/plain"),
        (status = 404, description = "No such file", body = crate::api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document_file() {}
