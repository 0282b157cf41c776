//! What the generator asks: which operation, which key in which
//! namespace, and the exact HTTP request for it.
//!
//! Key `i` of the key space is `key:{i:08}` in namespace `bench{i % N}`
//! (or the default namespace when N is 0), so `--preload` can set every
//! key once, in order, and a GET of any key then hits.
//!
//! With `--op batch`, each request is a `POST /batch` of `--batch-size`
//! ops drawn from the mix, on random keys of one namespace (a batch is in
//! one namespace).

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request};

use super::Api;

/// One kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Set,
    /// A `POST /batch` of gets and sets.
    Batch,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Get, Op::Set, Op::Batch];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Batch => "batch",
        }
    }
}

/// Proportions of GETs and SETs, e.g. 9 to 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    get: u32,
    set: u32,
}

impl Mix {
    pub fn only(op: Op) -> Mix {
        match op {
            Op::Get => Mix { get: 1, set: 0 },
            Op::Set => Mix { get: 0, set: 1 },
            Op::Batch => unreachable!("a batch's ops are gets and sets"),
        }
    }

    /// Parses `get=9,set=1` (either may be left out, meaning 0).
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut mix = Mix { get: 0, set: 0 };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("--ratio: expected OP=WEIGHT, got {part:?}"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("--ratio: {weight:?} is not a whole number"))?;
            match name.trim() {
                "get" => mix.get = weight,
                "set" => mix.set = weight,
                other => {
                    return Err(format!(
                        "--ratio: unknown operation {other:?}; use get, set"
                    ));
                }
            }
        }
        if mix.get.checked_add(mix.set).is_none_or(|total| total == 0) {
            return Err(format!("--ratio: {text:?} gives no operation a weight"));
        }
        Ok(mix)
    }

    /// Draws an operation in the mix's proportions.
    pub fn pick(&self, rng: &mut fastrand::Rng) -> Op {
        if rng.u32(0..self.get + self.set) < self.get {
            Op::Get
        } else {
            Op::Set
        }
    }
}

/// Builds the requests of a run; shared read-only by every connection.
#[derive(Debug, Clone)]
pub struct Requests {
    /// `Host` header: the URL's authority.
    host: String,
    /// Path prefix of the URL (empty, or e.g. `/kv` behind a proxy).
    prefix: String,
    namespaces: u32,
    /// The end of every SET body after the key: `","value":"vvv",...}`.
    set_tail: String,
    api: Api,
    /// webdis: the end of every SET path after the key: `/vvv[/EX/ttl]`.
    webdis_set_tail: String,
}

/// The requests a batch's ops make of `(op, key number)`: every key in
/// the namespace of the first.
pub fn batch_keys(
    mix: &Mix,
    size: usize,
    keyspace: u64,
    namespaces: u32,
    rng: &mut fastrand::Rng,
) -> Vec<(Op, u64)> {
    let spaces = u64::from(namespaces.max(1));
    let namespace = rng.u64(0..spaces.min(keyspace));
    (0..size)
        .map(|_| {
            // A random key of the batch's namespace: same residue mod N.
            let slots = (keyspace - namespace).div_ceil(spaces);
            let index = namespace + rng.u64(0..slots) * spaces;
            (mix.pick(rng), index)
        })
        .collect()
}

impl Requests {
    pub fn new(
        host: String,
        prefix: String,
        namespaces: u32,
        value_size: usize,
        ttl: Option<u64>,
    ) -> Self {
        let value = "v".repeat(value_size);
        let ttl_secs = ttl;
        let ttl = ttl.map(|t| format!(",\"ttl\":{t}")).unwrap_or_default();
        let webdis_ttl = ttl_secs.map(|t| format!("/EX/{t}")).unwrap_or_default();
        Requests {
            host,
            prefix,
            namespaces,
            set_tail: format!("\",\"value\":\"{value}\"{ttl}}}"),
            api: Api::Pykv,
            webdis_set_tail: format!("/{value}{webdis_ttl}"),
        }
    }

    /// The same requests in `api`'s shape.
    pub fn speaking(mut self, api: Api) -> Self {
        self.api = api;
        self
    }

    /// webdis's request for `op` on key number `index`: Redis's GET and
    /// SET as paths, the namespace a key prefix.
    fn build_webdis(&self, op: Op, index: u64) -> Request<Full<Bytes>> {
        let key = match namespace_name(index, self.namespaces) {
            Some(ns) => format!("{ns}:{}", key_name(index)),
            None => key_name(index),
        };
        let path = match op {
            Op::Get => format!("{}/GET/{key}", self.prefix),
            Op::Set => format!("{}/SET/{key}{}", self.prefix, self.webdis_set_tail),
            Op::Batch => unreachable!("--op batch with --api webdis is refused with the arguments"),
        };
        (Request::builder().header(HOST, &self.host))
            .method(Method::GET)
            .uri(path)
            .body(Full::new(Bytes::new()))
            .expect("the URL was checked and keys are URL-safe")
    }

    /// The request for `op` on key number `index`.
    pub fn build(&self, op: Op, index: u64) -> Request<Full<Bytes>> {
        if self.api == Api::Webdis {
            return self.build_webdis(op, index);
        }
        let query = self.ns_query(index);
        let key = key_name(index);
        let builder = Request::builder().header(HOST, &self.host);
        let request = match op {
            Op::Batch => unreachable!("a batch is built by build_batch"),
            Op::Get => builder
                .method(Method::GET)
                .uri(format!("{}/get/{key}{query}", self.prefix))
                .body(Full::new(Bytes::new())),
            Op::Set => builder
                .method(Method::POST)
                .uri(format!("{}/set{query}", self.prefix))
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(format!(
                    "{{\"key\":\"{key}{}",
                    self.set_tail
                )))),
        };
        request.expect("the URL was checked and keys are URL-safe")
    }

    /// The `POST /batch` of `ops`, in the namespace of the first.
    pub fn build_batch(&self, ops: &[(Op, u64)]) -> Request<Full<Bytes>> {
        let query = self.ns_query(ops.first().map_or(0, |(_, index)| *index));
        let mut body = String::with_capacity(16 + ops.len() * (40 + self.set_tail.len()));
        body.push_str("{\"ops\":[");
        for (i, (op, index)) in ops.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            let key = key_name(*index);
            match op {
                Op::Set => {
                    body.push_str("{\"op\":\"set\",\"key\":\"");
                    body.push_str(&key);
                    body.push_str(&self.set_tail);
                }
                _ => {
                    body.push_str("{\"op\":\"get\",\"key\":\"");
                    body.push_str(&key);
                    body.push_str("\"}");
                }
            }
        }
        body.push_str("]}");
        Request::builder()
            .header(HOST, &self.host)
            .method(Method::POST)
            .uri(format!("{}/batch{query}", self.prefix))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("the URL was checked and keys are URL-safe")
    }

    /// `?ns=benchN`, or nothing for the default namespace.
    fn ns_query(&self, index: u64) -> String {
        match namespace_name(index, self.namespaces) {
            Some(ns) => format!("?ns={ns}"),
            None => String::new(),
        }
    }
}

/// The name of key number `index`: URL-safe, a fixed 12 bytes up to
/// 100,000,000 keys.
pub fn key_name(index: u64) -> String {
    format!("key:{index:08}")
}

/// The namespace of key number `index`, `None` for the default namespace.
pub fn namespace_name(index: u64, namespaces: u32) -> Option<String> {
    (namespaces > 0).then(|| format!("bench{}", index % u64::from(namespaces)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ratios() {
        assert_eq!(Mix::parse("get=9,set=1"), Ok(Mix { get: 9, set: 1 }));
        assert_eq!(Mix::parse("set=3"), Ok(Mix { get: 0, set: 3 }));
        assert!(Mix::parse("get=0").is_err());
        assert!(Mix::parse("del=1").is_err());
        assert!(Mix::parse("get").is_err());
    }

    #[test]
    fn webdis_requests_are_redis_commands_as_paths() {
        let requests = Requests::new("h".into(), String::new(), 1, 3, Some(9));
        let webdis = requests.speaking(Api::Webdis);
        assert_eq!(webdis.build(Op::Get, 7).uri(), "/GET/bench0:key:00000007");
        assert_eq!(
            webdis.build(Op::Set, 7).uri(),
            "/SET/bench0:key:00000007/vvv/EX/9"
        );
    }

    #[test]
    fn set_bodies_are_json() {
        let requests = Requests::new("h".into(), String::new(), 2, 4, Some(60));
        let tail: serde_json::Value =
            serde_json::from_str(&format!("{{\"key\":\"k{}", requests.set_tail)).unwrap();
        assert_eq!(
            tail,
            serde_json::json!({"key": "k", "value": "vvvv", "ttl": 60})
        );
        assert_eq!(requests.ns_query(3), "?ns=bench1");
    }

    #[test]
    fn a_batch_keeps_to_one_namespace_and_is_json() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mix = Mix::parse("get=1,set=1").unwrap();
        for _ in 0..50 {
            let ops = batch_keys(&mix, 20, 10, 3, &mut rng);
            assert_eq!(ops.len(), 20);
            let first = ops[0].1 % 3;
            assert!(
                ops.iter().all(|(_, i)| i % 3 == first && *i < 10),
                "{ops:?}"
            );
        }
        let requests = Requests::new("h".into(), String::new(), 3, 2, None);
        let ops = batch_keys(&mix, 5, 10, 3, &mut rng);
        let request = requests.build_batch(&ops);
        let body = futures_body(request.into_body());
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["ops"].as_array().unwrap().len(), 5);
    }

    fn futures_body(body: Full<Bytes>) -> Vec<u8> {
        use http_body_util::BodyExt;
        let collected = crate::backend::ready_now(body.collect()).unwrap().unwrap();
        collected.to_bytes().to_vec()
    }
}
