//! `label_selector`: see [`onprem::fuzzing::label_selector`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onprem::fuzzing::label_selector(data));
