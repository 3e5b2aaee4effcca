//! `textfile_prom`: see [`onprem::fuzzing::textfile_prom`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onprem::fuzzing::textfile_prom(data));
