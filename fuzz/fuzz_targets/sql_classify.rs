//! SQL classification (sqlparser, PostgreSQL then SQLite dialect, and the
//! router's own checks) on arbitrary text: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sql) = std::str::from_utf8(data) {
        let _ = router::classify::classify(sql, 1 << 16);
    }
});
