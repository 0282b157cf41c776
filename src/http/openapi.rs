//! `GET /openapi.json`: the OpenAPI 3.1 document of the API, generated
//! from the code by utoipa: each operation carries its `#[utoipa::path]`
//! (route, parameters, every status it can answer), and the bodies are the
//! types of [`crate::api`], the ones the operations encode their answers
//! with. `tests/operability.rs` checks that every route of the router is
//! in the document and that real answers match their schemas.

use utoipa::OpenApi;

use crate::api::{
    BatchAnswer, BatchBody, BatchOpBody, BatchResult, ClearAnswer, CompactAnswer, DeleteAnswer,
    ErrorBody, ErrorRecord, ExpireBody, ExportLine, GetAnswer, HealthAnswer, ImportAnswer,
    IncrAnswer, IncrBody, KeysAnswer, NamespaceKeysAnswer, NamespaceStats, NamespacesAnswer,
    OperationFigures, Performance, QuotaAnswer, QuotaBody, RecentErrors, SetAnswer, SetBody,
    StatsAnswer, TtlAnswer, UnhealthyAnswer,
};

/// The document, built once per request of `/openapi.json` (it is small):
/// the operations' own descriptions, from the list of operations.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    for (path, methods, operation) in super::ops::documented_operations() {
        doc.paths.add_path_operation(path, methods, operation);
    }
    add_guard_answers(&mut doc);
    close_batch_ops(&mut doc);
    doc
}

/// A batch's op takes its own fields and no other (the server refuses
/// the rest, naming the op and the field): said in the document by
/// `additionalProperties: false` on each kind of op, which utoipa does not
/// derive for the variants of a tagged enum.
fn close_batch_ops(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{AdditionalProperties, Schema};
    let schemas = doc.components.as_mut().map(|c| &mut c.schemas);
    let Some(RefOr::T(Schema::OneOf(kinds))) = schemas.and_then(|s| s.get_mut("BatchOpBody"))
    else {
        return;
    };
    for kind in &mut kinds.items {
        if let RefOr::T(Schema::Object(object)) = kind {
            object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
        }
    }
}

/// Routes that answer without a token (the documentation itself, and the
/// empty-key errors, which are refused before anything else).
const OPEN_PATHS: [&str; 3] = ["/openapi.json", "/docs", "/docs/{file}"];

/// Every other route may also answer 401 (no or unknown token, once the
/// server has tokens), 403 (outside the token's namespaces or access) and
/// 429 (over a namespace's rate limit): added here once rather than on
/// every handler. The bearer scheme lets the docs page send a token.
fn add_guard_answers(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    let guarded = [
        (
            "401",
            "No token, or an unknown one, on a server that requires tokens",
        ),
        (
            "403",
            "The token does not allow this namespace or this access",
        ),
        (
            "429",
            "Over the namespace's rate limit; see the Retry-After header",
        ),
    ];
    for (path, item) in doc.paths.paths.iter_mut() {
        if OPEN_PATHS.contains(&path.as_str()) {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, description) in guarded {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error(description).into());
            }
            operation.security = Some(vec![
                SecurityRequirement::default(),
                SecurityRequirement::new("bearer", Vec::<String>::new()),
            ]);
        }
    }
    let scheme = SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme("bearer", scheme);
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "PyKV",
        description = "A multi-tenant key-value server over HTTP and JSON, wire-compatible \
            with the Python PyKV. Namespaces come from `?ns=` (or the body's `namespace` on \
            `POST /set`); without one, a request works on the default namespace. Every error \
            is `{\"detail\": \"...\"}`. Any route called with a method it does not accept \
            answers 405, and a path that matches no route 404, both with a `detail`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    components(schemas(
        SetBody,
        SetAnswer,
        IncrBody,
        IncrAnswer,
        TtlAnswer,
        ExpireBody,
        BatchBody,
        BatchOpBody,
        BatchAnswer,
        BatchResult,
        GetAnswer,
        DeleteAnswer,
        NamespacesAnswer,
        NamespaceKeysAnswer,
        KeysAnswer,
        QuotaBody,
        QuotaAnswer,
        ClearAnswer,
        ExportLine,
        ImportAnswer,
        StatsAnswer,
        NamespaceStats,
        HealthAnswer,
        UnhealthyAnswer,
        CompactAnswer,
        ErrorBody,
        Performance,
        OperationFigures,
        RecentErrors,
        ErrorRecord,
    )),
    tags(
        (name = "keys", description = "Set, get and delete keys"),
        (name = "namespaces", description = "List, measure and clear namespaces"),
        (name = "server", description = "Statistics, health and log compaction"),
        (name = "operability", description = "Metrics, performance figures and documentation"),
    )
)]
struct ApiDoc;
