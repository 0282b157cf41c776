//! The `POST /set` body parser: any bytes must give a request or a 400/422
//! error, never a panic; an accepted request is one the server can store
//! and log on one line.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    match pykv::fuzzing::parse_set_request(body) {
        Ok(request) => {
            assert!(!request.key.is_empty());
            assert!(!request.value.contains(['\n', '\r']), "{request:?}");
            assert!(
                serde_json::from_str::<&serde_json::value::RawValue>(&request.value).is_ok(),
                "{request:?}"
            );
            if let Some(ttl) = request.ttl {
                assert!((1..=pykv::http::MAX_TTL_SECS).contains(&ttl));
            }
        }
        Err((status, detail)) => assert!(status == 400 || status == 422, "{status} {detail}"),
    }
});
