//! `sysfs`: see [`onprem::fuzzing::sysfs`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onprem::fuzzing::sysfs(data));
