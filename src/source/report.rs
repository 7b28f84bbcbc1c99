//! What `ecrship source` prints: the commit, the zip, and the object version S3 gave it.

use std::fmt;

use serde::Serialize;

use super::commit::Commit;

/// The result of `ecrship source`, as text or `--output json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub commit: Commit,
    /// The commit file in the zip (`[tag] file`).
    pub tag_file: String,
    /// Entries in the zip, the commit file included.
    pub files: usize,
    /// Bytes of the zip.
    pub size: u64,
    /// Where the zip was kept (`--out`, or a dry-run's `src.zip`).
    pub out: Option<String>,
    /// `None` for a dry-run.
    pub upload: Option<Upload>,
}

/// The object the zip became.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upload {
    pub bucket: String,
    pub key: String,
    /// The S3 object version: what CodePipeline's source stage runs with.
    pub version_id: String,
    pub etag: Option<String>,
    /// 1 for one `PutObject`, else the parts of the multipart upload.
    pub parts: u64,
    /// `false` when the caller could not read the bucket's versioning (`AccessDenied`).
    pub versioning_checked: bool,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.commit;
        writeln!(f, "commit   {} ({} {})", c.tag, c.from, c.id)?;
        writeln!(
            f,
            "zip      {} files with {}, {}",
            self.files,
            self.tag_file,
            size(self.size)
        )?;
        if let Some(out) = &self.out {
            writeln!(f, "written  {out}")?;
        }
        match &self.upload {
            Some(u) => {
                writeln!(f, "object   s3://{}/{}", u.bucket, u.key)?;
                writeln!(f, "version  {}", u.version_id)
            }
            None => writeln!(f, "dry run: nothing uploaded"),
        }
    }
}

/// `512 B`, `45.1 KiB`, `12.0 MiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(upload: Option<Upload>) -> Report {
        Report {
            commit: Commit {
                id: "0123456789abcdef0123456789abcdef01234567".into(),
                tag: "01234567".into(),
                from: "CI_COMMIT_SHA",
                time: 1_700_000_000,
            },
            tag_file: ".git-commit-hash".into(),
            files: 124,
            size: 46_182,
            out: None,
            upload,
        }
    }

    #[test]
    fn text_names_the_object_version() {
        let text = report(Some(Upload {
            bucket: "src-bucket".into(),
            key: "app/src.zip".into(),
            version_id: "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY".into(),
            etag: Some("\"abc\"".into()),
            parts: 1,
            versioning_checked: true,
        }))
        .to_string();
        assert_eq!(
            text,
            "commit   01234567 (CI_COMMIT_SHA 0123456789abcdef0123456789abcdef01234567)\n\
             zip      124 files with .git-commit-hash, 45.1 KiB\n\
             object   s3://src-bucket/app/src.zip\n\
             version  3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY\n"
        );
        let json = serde_json::to_value(report(None)).unwrap();
        assert_eq!(json["commit"]["tag"], "01234567");
        assert_eq!(json["upload"], serde_json::Value::Null);
        assert!(
            report(None)
                .to_string()
                .ends_with("dry run: nothing uploaded\n")
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(12 * 1024 * 1024), "12.0 MiB");
    }
}
