//! `bundle_yaml`: see [`onprem::fuzzing::bundle_yaml`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onprem::fuzzing::bundle_yaml(data));
