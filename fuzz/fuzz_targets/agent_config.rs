//! `agent_config`: see [`onprem::fuzzing::agent_config`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| onprem::fuzzing::agent_config(data));
