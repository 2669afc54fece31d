//! Fuzz target: `im_fuzz::checks::config_toml` on every input that is UTF-8.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        im_fuzz::checks::config_toml(s);
    }
});
