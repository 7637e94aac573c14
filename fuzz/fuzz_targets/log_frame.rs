#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| riffle_fuzz::log_frame(data));
