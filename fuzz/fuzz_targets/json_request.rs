#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| riffle_fuzz::json_request(data));
