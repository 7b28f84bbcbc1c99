//! A digest of a build context's entries exactly as they are sent to the daemon.
//!
//! Every entry adds its kind, path, mode, size, link target and device numbers, then its
//! content, to one SHA-256, in the order the walk sends them. Modification times are left out:
//! a fresh checkout of the same tree changes them, and BuildKit's cache keys leave them out too
//! (buildkit `cache/contenthash`). Owners are always sent as 0:0.

use sha2::{Digest as _, Sha256};

/// The kind of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A second path of a hard-linked file; its link is the first path.
    HardLink,
    Fifo,
    CharDevice,
    BlockDevice,
}

impl Kind {
    fn tag(self) -> u8 {
        match self {
            Kind::File => b'f',
            Kind::Dir => b'd',
            Kind::Symlink => b'l',
            Kind::HardLink => b'h',
            Kind::Fifo => b'p',
            Kind::CharDevice => b'c',
            Kind::BlockDevice => b'b',
        }
    }
}

/// The running digest of a context; see the module docs.
#[derive(Clone)]
pub struct ContextDigest {
    sha: Sha256,
    entries: u64,
}

impl Default for ContextDigest {
    fn default() -> Self {
        ContextDigest {
            sha: Sha256::new(),
            entries: 0,
        }
    }
}

impl std::fmt::Debug for ContextDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextDigest")
            .field("entries", &self.entries)
            .finish()
    }
}

impl ContextDigest {
    /// One entry's header; for a file, its `size` bytes of content follow through [`Self::data`].
    pub fn entry(
        &mut self,
        kind: Kind,
        path: &[u8],
        mode: u32,
        size: u64,
        link: Option<&[u8]>,
        device: Option<(u32, u32)>,
    ) {
        self.entries += 1;
        self.sha.update([kind.tag()]);
        self.sha.update(mode.to_be_bytes());
        self.sha.update(size.to_be_bytes());
        frame(&mut self.sha, path);
        frame(&mut self.sha, link.unwrap_or_default());
        let (major, minor) = device.unwrap_or_default();
        self.sha.update(major.to_be_bytes());
        self.sha.update(minor.to_be_bytes());
    }

    /// Content of the last file entry, in any number of pieces.
    pub fn data(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
    }

    /// How many entries were added.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// `sha256:<hex>` of everything added.
    pub fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.sha.finalize()))
    }
}

/// Length-prefixed bytes: no two different sequences of fields hash the same way.
fn frame(sha: &mut Sha256, bytes: &[u8]) {
    sha.update((bytes.len() as u64).to_be_bytes());
    sha.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(entries: &[(Kind, &str, u32, &str)]) -> String {
        let mut d = ContextDigest::default();
        for (kind, path, mode, content) in entries {
            let link = (*kind == Kind::Symlink).then_some(content.as_bytes());
            let size = if *kind == Kind::File {
                content.len()
            } else {
                0
            };
            d.entry(*kind, path.as_bytes(), *mode, size as u64, link, None);
            if *kind == Kind::File {
                d.data(content.as_bytes());
            }
        }
        d.finish()
    }

    #[test]
    fn every_field_counts_and_nothing_else() {
        let base = [
            (Kind::Dir, "a/", 0o755, ""),
            (Kind::File, "a/x", 0o644, "hello"),
        ];
        let same = digest(&base);
        assert_eq!(same, digest(&base));
        assert!(same.starts_with("sha256:") && same.len() == 71);
        let variants: [&[(Kind, &str, u32, &str)]; 6] = [
            &[
                (Kind::Dir, "a/", 0o755, ""),
                (Kind::File, "a/x", 0o755, "hello"),
            ],
            &[
                (Kind::Dir, "a/", 0o755, ""),
                (Kind::File, "a/y", 0o644, "hello"),
            ],
            &[
                (Kind::Dir, "a/", 0o755, ""),
                (Kind::File, "a/x", 0o644, "hellO"),
            ],
            &[
                (Kind::Dir, "a/", 0o700, ""),
                (Kind::File, "a/x", 0o644, "hello"),
            ],
            &[
                (Kind::Dir, "a/", 0o755, ""),
                (Kind::Symlink, "a/x", 0o644, "hello"),
            ],
            &[
                (Kind::File, "a/x", 0o644, "hello"),
                (Kind::Dir, "a/", 0o755, ""),
            ],
        ];
        for variant in variants {
            assert_ne!(digest(variant), same, "{variant:?}");
        }
        // Content split differently is the same content.
        let mut d = ContextDigest::default();
        d.entry(Kind::Dir, b"a/", 0o755, 0, None, None);
        d.entry(Kind::File, b"a/x", 0o644, 5, None, None);
        d.data(b"he");
        d.data(b"llo");
        assert_eq!(d.entries(), 2);
        assert_eq!(d.finish(), same);
        // Field boundaries are framed: moving a byte from the path to the link changes it.
        let mut a = ContextDigest::default();
        a.entry(Kind::Symlink, b"ab", 0o777, 0, Some(b"c"), None);
        let mut b = ContextDigest::default();
        b.entry(Kind::Symlink, b"a", 0o777, 0, Some(b"bc"), None);
        assert_ne!(a.finish(), b.finish());
    }
}
