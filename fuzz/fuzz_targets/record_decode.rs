//! The record decoder on arbitrary bytes: never panics, and whatever it
//! accepts encodes back to something that decodes to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = wal_bus::Record::decode(data) {
        let again = wal_bus::Record::decode(&record.encode()).expect("re-encoded record decodes");
        assert_eq!(again, record);
    }
});
