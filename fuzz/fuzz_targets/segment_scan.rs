//! The log segment reader's frame walk on arbitrary file contents: never
//! panics, and what it calls intact lies inside the bytes, in order.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let walk = wal_bus::scan_frames(data, 1 << 16);
    assert!(walk.valid_len <= data.len());
    assert!(walk.positions.windows(2).all(|w| w[0] < w[1]));
    assert!(
        walk.positions
            .iter()
            .all(|p| (*p as usize) < walk.valid_len.max(1))
    );
    if let Some((at, _)) = &walk.damage {
        assert_eq!(*at as usize, walk.valid_len);
    }
});
