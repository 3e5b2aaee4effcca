//! `redfish_body`: see [`onprem::fuzzing::redfish_body`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onprem::fuzzing::redfish_body(data));
