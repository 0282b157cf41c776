//! What the generator asks: which operation, which key in which
//! namespace, and the exact HTTP request for it.
//!
//! Key `i` of the key space is `key:{i:08}` in namespace `bench{i % N}`
//! (or the default namespace when N is 0), so `--preload` can set every
//! key once, in order, and a GET of any key then hits.

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
}

impl Op {
    pub const ALL: [Op; 2] = [Op::Get, Op::Set];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
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
}
