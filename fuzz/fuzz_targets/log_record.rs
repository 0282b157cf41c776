//! The write-ahead log's record parser, as recovery runs it on every line
//! of `wal.log`: any bytes must give a record or an error, never a panic;
//! an accepted SET carries a value that is JSON text.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    if let Ok(record) = pykv::fuzzing::decode_log_line(line) {
        if let Some(value) = &record.value {
            assert!(
                serde_json::from_str::<&serde_json::value::RawValue>(value).is_ok(),
                "a SET value that is not JSON: {value:?}"
            );
        }
        // Re-encoding an accepted SET gives a line that decodes the same.
        if record.action == "SET" {
            let line = pykv::fuzzing::encode_set_record(
                record.namespace.as_deref(),
                &record.key,
                record.value.as_deref().unwrap_or("null"),
                record.expires_at,
                0,
            );
            let again = pykv::fuzzing::decode_log_line(&line[..line.len() - 1])
                .expect("a line written by the log decodes");
            assert_eq!(again.key, record.key);
            assert_eq!(again.namespace, record.namespace);
            assert_eq!(again.value, record.value);
        }
    }
});
