//! Micro-benchmarks of the HTTP pipeline with no network: a request built
//! in memory goes through the server's own service (site checks, route,
//! token, body, parse, admit, execute against the embedded backend,
//! observe, encode) and its answer is collected. What the server adds to a
//! request between hyper's parser and its writer.
//!
//! ```sh
//! cargo bench --bench pipeline
//! ```

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::Service as _;
use hyper::{Method, Request};

use pykv::auth::{Authenticator, TokenFile};
use pykv::backend::Backend;
use pykv::embedded::{EmbeddedBackend, EmbeddedOptions};
use pykv::http::origin::SiteCheck;
use pykv::http::{HandlerContext, Observer, ServerViews};
use pykv::rate_limit::RateLimits;
use pykv::store::StoreConfig;
use pykv::wal::{AutoCompaction, FsyncPolicy, WalOptions};

/// Keys in the namespace read and written.
const KEYS: u64 = 10_000;

/// The server's service over an embedded backend with `KEYS` keys, its log
/// in `dir` (`--fsync no`: the pipeline is measured, not the disk), as one
/// connection calls it.
fn service(dir: &std::path::Path) -> pykv::http::ConnectionService {
    let options = EmbeddedOptions {
        data_dir: dir.to_owned(),
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
    let (db, _) = EmbeddedBackend::open(&options).expect("open the data directory");
    let backend = Arc::new(Backend::from(db));
    pykv::http::service(HandlerContext {
        views: ServerViews::new(backend.clone()),
        backend,
        max_body_bytes: 8 * 1024 * 1024,
        auth: Authenticator::open(TokenFile::in_data_dir(dir)).expect("no token file"),
        rate_limits: Arc::new(RateLimits::default()),
        cors_origins: Vec::new(),
        sites: Arc::new(SiteCheck::new(
            std::net::Ipv4Addr::LOCALHOST.into(),
            &[],
            &[],
        )),
        request_timeout: Duration::from_secs(30),
        metrics_namespace_limit: 100,
        observer: Observer::new(),
    })
    .for_connection()
}

fn request(method: Method, uri: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "127.0.0.1:8000")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("a valid request")
}

fn set_body(i: u64) -> &'static str {
    const BODIES: [&str; 4] = [
        r#"{"key":"key:00000001","value":"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"}"#,
        r#"{"key":"key:00000002","value":"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"}"#,
        r#"{"key":"key:00000003","value":"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"}"#,
        r#"{"key":"key:00000004","value":"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"}"#,
    ];
    BODIES[(i % 4) as usize]
}

fn pipeline(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let service = runtime.block_on(async { service(dir.path()) });
    runtime.block_on(async {
        for i in 0..KEYS {
            let body =
                format!(r#"{{"key":"key:{i:08}","value":"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"}}"#);
            let request = Request::post("/set?ns=bench0")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let answer = service.call(request).await.unwrap();
            assert_eq!(answer.status(), 200);
        }
    });
    let mut i = 0u64;
    c.bench_function("pipeline/get_hit", |b| {
        b.to_async(&runtime).iter(|| {
            i = (i + 7919) % KEYS;
            let uri = format!("/get/key:{i:08}?ns=bench0");
            let answer = service.call(request(Method::GET, &uri, ""));
            async move {
                let answer = answer.await.unwrap();
                assert_eq!(answer.status(), 200);
                answer.into_body().collect().await.unwrap().to_bytes()
            }
        })
    });
    c.bench_function("pipeline/set", |b| {
        b.to_async(&runtime).iter(|| {
            i += 1;
            let answer = service.call(request(Method::POST, "/set?ns=bench0", set_body(i)));
            async move {
                let answer = answer.await.unwrap();
                assert_eq!(answer.status(), 200);
                answer.into_body().collect().await.unwrap().to_bytes()
            }
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4));
    targets = pipeline
}
criterion_main!(benches);
