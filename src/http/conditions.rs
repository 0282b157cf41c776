//! HTTP's validators on the key routes: the `ETag` of `GET /get/{key}`, and
//! the `If-Match` / `If-None-Match` preconditions of `POST /set` and
//! `DELETE /delete/{key}` (check-and-set, [`crate::store::Condition`]).
//!
//! Tags are strong, written `"` + 16 hex digits + `"`, as RFC 9110 reads
//! them: `If-Match` holds when the key's tag is the one given (`*`: when the
//! key exists), so a value that is no tag of ours (a weak tag, a list, a
//! typo) never holds and the write is refused with 412, never silently
//! done. `If-None-Match: *` creates only; `If-None-Match: "<tag>"` writes
//! unless the key has that tag. Both at once is a 422.

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
        // A value that is no tag of ours differs from every key's tag.
        (None, Some(value)) => Ok(tag_of(value).map(Condition::Differs)),
    }
}

/// The tag a header names, if it is one this server gives.
fn tag_of(value: &HeaderValue) -> Option<u64> {
    let hex = value
        .as_bytes()
        .trim_ascii()
        .strip_prefix(b"\"")
        .and_then(|rest| rest.strip_suffix(b"\""))
        .filter(|hex| hex.len() == 16)?;
    u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

fn if_match_condition(value: &HeaderValue) -> Result<Condition, ApiError> {
    if value.as_bytes().trim_ascii() == b"*" {
        return Ok(Condition::Present);
    }
    Ok(tag_of(value).map_or(Condition::Never, Condition::Matches))
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
        for never in [
            headers(&[("if-match", "00000000000000ff")]),
            headers(&[("if-match", "W/\"00000000000000ff\"")]),
            headers(&[("if-match", "\"a\", \"b\"")]),
        ] {
            assert_eq!(
                precondition(&never).unwrap(),
                Some(Condition::Never),
                "{never:?}"
            );
        }
        let differs = headers(&[("if-none-match", "\"00000000000000ff\"")]);
        assert_eq!(
            precondition(&differs).unwrap(),
            Some(Condition::Differs(255))
        );
        let junk = headers(&[("if-none-match", "0")]);
        assert_eq!(precondition(&junk).unwrap(), None);
        let both = headers(&[("if-match", "*"), ("if-none-match", "*")]);
        assert!(precondition(&both).is_err());
    }
}
