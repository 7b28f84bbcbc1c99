//! `ecrship.toml` loader: no input panics or hangs, and every error names the file.
#![no_main]

use ecrship::config::{Config, Origin};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Origin::File("ecrship.toml".into())) {
        Ok(config) => {
            // What `plan` does next with a valid config, minus the file system.
            let _ = config.select(&[]);
            let _ = config.select(&["app".to_owned()]);
        }
        Err(error) => {
            let message = error.to_string();
            assert!(message.starts_with("ecrship.toml"), "an error that does not name the file: {message}");
        }
    }
});
