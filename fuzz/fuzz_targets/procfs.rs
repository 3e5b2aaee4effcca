//! `procfs`: see [`onprem::fuzzing::procfs`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onprem::fuzzing::procfs(data));
