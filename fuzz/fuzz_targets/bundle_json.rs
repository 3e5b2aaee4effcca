//! `bundle_json`: see [`onprem::fuzzing::bundle_json`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onprem::fuzzing::bundle_json(data));
