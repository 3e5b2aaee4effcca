//! `tunnel_first_frame`: see [`onprem::fuzzing::tunnel_first_frame`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onprem::fuzzing::tunnel_first_frame(data));
