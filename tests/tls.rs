//! Native TLS: a real HTTPS round trip with certificates made at test time,
//! plain HTTP refused on the TLS port, unknown and expired certificates
//! refused by the client, mutual TLS, and a certificate rotated by SIGHUP
//! under load without one failed request.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::Server;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::json;

/// A certificate authority made for one test.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Authority {
    fn new() -> Authority {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Authority {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// `(certificate, key)` in PEM for these names, expired if asked.
    fn issue(&self, names: &[&str], expired: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A client trusting `ca` (none: only the system's roots).
fn client(ca: Option<&str>, identity: Option<(&str, &str)>) -> reqwest::Client {
    pykv::tls::install_default_provider();
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10));
    if let Some(ca) = ca {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap());
    }
    if let Some((cert, key)) = identity {
        let pem = format!("{cert}{key}");
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

fn addr_of(server: &Server) -> SocketAddr {
    server
        .base_url()
        .trim_start_matches("https://")
        .parse()
        .unwrap()
}

/// A server with a certificate for 127.0.0.1 from `ca`, and its files.
fn https_server(dir: &Path, ca: &Authority, extra: &[&str]) -> Server {
    let (cert, key) = ca.issue(&["127.0.0.1", "localhost"], false);
    let cert = write(dir, "cert.pem", &cert);
    let key = write(dir, "key.pem", &key);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
    args.extend_from_slice(extra);
    Server::start_in(&data, &args)
}

#[tokio::test]
async fn https_round_trip_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new();
    let server = https_server(dir.path(), &ca, &[]);
    assert!(
        server.base_url().starts_with("https://"),
        "{}",
        server.base_url()
    );
    let base = server.base_url();

    let trusting = client(Some(&ca.pem), None);
    let set = trusting
        .post(format!("{base}/set?ns=app1"))
        .json(&json!({"key": "k", "value": "over TLS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let got: serde_json::Value = (trusting.get(format!("{base}/get/k?ns=app1")).send().await)
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["value"], "over TLS");

    // Plain HTTP on the TLS port: no answer, the connection is closed.
    let plain = client(None, None);
    let http_url = format!("http://{}/health", addr_of(&server));
    assert!(
        plain.get(&http_url).send().await.is_err(),
        "plain HTTP was answered"
    );
    // A client that does not know the CA refuses the server.
    let refused = plain
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap_err();
    assert!(refused.is_connect(), "{refused:?}");

    // The CLI: refused without --cacert, fine with it.
    let cacert = write(dir.path(), "ca.pem", &ca.pem);
    let cli = |extra: &[&str]| {
        let mut args = vec!["health", "--url", base];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_pykv"))
            .args(&args)
            .output()
            .unwrap()
    };
    let without = cli(&[]);
    assert!(!without.status.success(), "{without:?}");
    let with = cli(&["--cacert", &cacert]);
    assert!(with.status.success(), "{with:?}");
}

#[tokio::test]
async fn an_expired_certificate_is_refused_by_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new();
    let (cert, key) = ca.issue(&["127.0.0.1"], true);
    let cert = write(dir.path(), "cert.pem", &cert);
    let key = write(dir.path(), "key.pem", &key);
    let server = Server::start_with(&["--tls-cert", &cert, "--tls-key", &key]);
    let error = (client(Some(&ca.pem), None)
        .get(server.url("/health"))
        .send()
        .await)
        .unwrap_err();
    let chain = format!("{error:?}");
    assert!(
        chain.contains("Expired") || chain.contains("expired"),
        "{chain}"
    );
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new();
    let client_ca = Authority::new();
    let client_ca_file = write(dir.path(), "client-ca.pem", &client_ca.pem);
    let server = https_server(dir.path(), &ca, &["--tls-client-ca", &client_ca_file]);
    let url = server.url("/health");

    let anonymous = client(Some(&ca.pem), None);
    assert!(
        anonymous.get(&url).send().await.is_err(),
        "served without a client certificate"
    );
    let (stranger_cert, stranger_key) = Authority::new().issue(&["client"], false);
    let stranger = client(Some(&ca.pem), Some((&stranger_cert, &stranger_key)));
    assert!(
        stranger.get(&url).send().await.is_err(),
        "served a certificate of another CA"
    );
    let (cert, key) = client_ca.issue(&["client"], false);
    let known = client(Some(&ca.pem), Some((&cert, &key)));
    assert_eq!(known.get(&url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_certificate_rotated_by_sighup_under_load_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new();
    let server = https_server(dir.path(), &ca, &[]);
    let addr = addr_of(&server);
    let url = server.url("/set?ns=load");

    // Load: writes over new and kept-alive connections, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
        let (url, pem) = (url.clone(), ca.pem.clone());
        load.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Every tenth request on a fresh connection (a new handshake).
                let http = client(Some(&pem), None);
                for _ in 0..10 {
                    let body = json!({"key": format!("w{worker}-{i}"), "value": i});
                    match http.post(&url).json(&body).send().await {
                        Ok(r) if r.status() == 200 => done.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    i += 1;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The new certificate also names `rotated.test`: only it can serve that.
    let (cert, key) = ca.issue(&["127.0.0.1", "rotated.test"], false);
    write(dir.path(), "cert.pem", &cert);
    write(dir.path(), "key.pem", &key);
    let status = Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rotated = reqwest::Client::builder()
        .resolve("rotated.test", addr)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .no_proxy()
        .build()
        .unwrap();
    let rotated_url = format!("https://rotated.test:{}/health", addr.port());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Err(e) = rotated.get(&rotated_url).send().await {
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate is never served: {e:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in load {
        worker.await.unwrap();
    }
    let (done, failed) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(done > 40, "too little load to mean anything: {done}");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed across the rotation",
        done + failed
    );
}

#[test]
fn bad_tls_files_stop_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new();
    let (cert, _) = ca.issue(&["127.0.0.1"], false);
    let (_, other_key) = ca.issue(&["127.0.0.1"], false);
    let cert = write(dir.path(), "cert.pem", &cert);
    let other_key = write(dir.path(), "other-key.pem", &other_key);
    let garbage = write(dir.path(), "garbage.pem", "not a certificate\n");
    for (args, named) in [
        (
            vec!["--tls-cert", &cert, "--tls-key", &other_key],
            "does not go with",
        ),
        (
            vec!["--tls-cert", &garbage, "--tls-key", &other_key],
            "garbage.pem",
        ),
        (vec!["--tls-cert", &cert], "--tls-key"),
    ] {
        let (code, stderr) = common::run_to_exit(dir.path(), &args);
        assert!(matches!(code, Some(1 | 2)), "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}
