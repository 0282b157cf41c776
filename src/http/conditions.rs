//! HTTP's validators on the key routes: the `ETag` of `GET /get/{key}`, and
//! the `If-Match` / `If-None-Match` preconditions of `POST /set` and
//! `DELETE /delete/{key}` (check-and-set, [`crate::store::Condition`]).
//!
//! Tags are strong, written `"` + 16 hex digits + `"`. Supported: one tag
//! or `*` in `If-Match`, and `*` in `If-None-Match` (create only). Anything
//! else is refused with 422 saying what to send, rather than ignored: a
//! precondition the server silently skipped would be a lost update.

use hyper::HeaderMap;
use hyper::header::{HeaderValue, IF_MATCH, IF_NONE_MATCH};

use super::error::ApiError;
use crate::store::Condition;

/// The precondition of a write, if the request has one.
pub fn precondition(headers: &HeaderMap) -> Result<Option<Condition>, ApiError> {
    let if_match = headers.get(IF_MATCH);
    let if_none_match = headers.get(IF_NONE_MATCH);
    match (if_match, if_none_match) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "headers: send If-Match or If-None-Match, not both",
        )),
        (Some(tag), None) => if_match_condition(tag).map(Some),
        (None, Some(value)) if value.as_bytes().trim_ascii() == b"*" => Ok(Some(Condition::Absent)),
        (None, Some(_)) => Err(ApiError::invalid(
            "header If-None-Match: only `*` is supported on writes (create the key only if it \
             does not exist)",
        )),
    }
}

fn if_match_condition(value: &HeaderValue) -> Result<Condition, ApiError> {
    let text = value.as_bytes().trim_ascii();
    if text == b"*" {
        return Ok(Condition::Present);
    }
    let hex = text
        .strip_prefix(b"\"")
        .and_then(|rest| rest.strip_suffix(b"\""))
        .filter(|hex| hex.len() == 16)
        .and_then(|hex| std::str::from_utf8(hex).ok())
        .and_then(|hex| u64::from_str_radix(hex, 16).ok());
    hex.map(Condition::Matches).ok_or_else(|| {
        ApiError::invalid(
            "header If-Match: expected one entity tag as GET /get/{key} gives it in ETag \
             (a quoted string of 16 hex digits), or `*`",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn reads_the_supported_preconditions_and_refuses_the_rest() {
        assert_eq!(precondition(&headers(&[])).unwrap(), None);
        let tag = headers(&[("if-match", "\"00000000000000ff\"")]);
        assert_eq!(precondition(&tag).unwrap(), Some(Condition::Matches(255)));
        let any = headers(&[("if-match", "*")]);
        assert_eq!(precondition(&any).unwrap(), Some(Condition::Present));
        let create = headers(&[("if-none-match", "*")]);
        assert_eq!(precondition(&create).unwrap(), Some(Condition::Absent));
        for bad in [
            headers(&[("if-match", "00000000000000ff")]),
            headers(&[("if-match", "W/\"00000000000000ff\"")]),
            headers(&[("if-match", "\"a\", \"b\"")]),
            headers(&[("if-none-match", "\"00000000000000ff\"")]),
            headers(&[("if-match", "*"), ("if-none-match", "*")]),
        ] {
            assert!(precondition(&bad).is_err(), "{bad:?}");
        }
    }
}
