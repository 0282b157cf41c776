//! Rate limits: per namespace, refused with 429 and `Retry-After`, and
//! other tenants' refused requests draining nobody's bucket.

use std::time::Duration;

use reqwest::Method;

use crate::common::Server;
use crate::support::{call, make_tokens, set_body};

#[tokio::test]
async fn rate_limits_are_per_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let quotas = dir.path().join("quotas.toml");
    std::fs::write(&quotas, "[default]\nrequests_per_second = 1\nburst = 3\n").unwrap();
    let tokens = make_tokens(dir.path());
    let server = Server::start_in(dir.path(), &["--quotas", quotas.to_str().unwrap()]);
    server.pin_to_one_node(); // a node limits the requests it answers

    // Another tenant's refused requests do not drain alpha's bucket.
    for _ in 0..10 {
        call(
            &server,
            Method::GET,
            "/get/k?ns=alpha",
            Some(&tokens.beta),
            None,
        )
        .await
        .assert_refused(403, "beta reading alpha");
    }
    let alpha = Some(tokens.alpha.as_str());
    for i in 0..3 {
        let r = call(
            &server,
            Method::POST,
            "/set?ns=alpha",
            alpha,
            Some(&set_body(&format!("k{i}"), None)),
        )
        .await;
        assert_eq!(r.status, 200, "request {i} of the burst: {r:?}");
    }
    let r = call(&server, Method::GET, "/get/k0?ns=alpha", alpha, None).await;
    r.assert_refused(429, "the 4th quick request");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After on a 429")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(retry >= 1, "{r:?}");
    // Other namespaces are unaffected.
    let r = call(
        &server,
        Method::POST,
        "/set?ns=beta",
        Some(&tokens.beta),
        Some(&set_body("k", None)),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    // After the wait it says, alpha works again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let r = call(&server, Method::GET, "/get/k0?ns=alpha", alpha, None).await;
    assert_eq!(r.status, 200, "{r:?}");
}
