//! Records the commit the binary is built from, for `ecrship --version`.

use std::process::Command;

fn main() {
    let commit = std::env::var("ECRSHIP_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        });
    println!(
        "cargo:rustc-env=ECRSHIP_COMMIT={}",
        commit.as_deref().unwrap_or("unknown commit")
    );
    println!("cargo:rerun-if-env-changed=ECRSHIP_COMMIT");
    for path in [".git/HEAD", ".git/refs/heads"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
