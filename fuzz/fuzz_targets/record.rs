//! `record`: see [`onprem::fuzzing::record`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onprem::fuzzing::record(data));
