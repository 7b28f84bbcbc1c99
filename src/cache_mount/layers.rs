//! A cache mount's content as an image whose bytes depend only on its files: one gzip layer per
//! top-level entry of the mount (at most [`MAX_LAYERS`]; beyond, entries share layers by a hash
//! of their names), each a tar whose headers carry the path, type, mode, owner, modification
//! time, size and link of each file and nothing else (no access or change times, no user or
//! group names), compressed without a timestamp and in blocks of a fixed size (the compressor's
//! output depends on how its input is cut, and the daemon's stream arrives cut anyhow). The same
//! files give the same layer digests on any host, so a layer the registry holds is not uploaded
//! again.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::reference::Platform;

/// More top-level entries than this share layers.
pub const MAX_LAYERS: usize = 64;
/// The size of every block the compressor is given, but the last.
const BLOCK: usize = 64 * 1024;
const MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// The label that names the mount a stored image holds.
pub const LABEL: &str = "dev.ecrship.cache-mount";

/// One layer, written to `file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub file: PathBuf,
    /// `sha256:` of the gzip bytes.
    pub digest: String,
    /// `sha256:` of the tar.
    pub diff_id: String,
    /// Bytes of the gzip.
    pub size: u64,
}

/// What [`split`] made of an archive.
#[derive(Debug, Default)]
pub struct Split {
    pub layers: Vec<Layer>,
    /// Bytes of the files' contents.
    pub bytes: u64,
    /// Entries left out: hard links to another layer's files, and special files.
    pub left_out: usize,
}

/// Splits `archive` (a tar of one folder, as `GET /containers/{id}/archive` returns it: every
/// name starts with the folder's) into layers of the folder's content, written under `dir`.
pub fn split(archive: impl Read, dir: &Path) -> io::Result<Split> {
    // A top-level entry's files come one after the other (the daemon walks the folder depth
    // first): each layer is finished when the next entry starts, so one is open at a time.
    let mut parts: Vec<(String, Layer)> = Vec::new();
    let mut open: Option<(String, Part)> = None;
    let mut split = Split::default();
    let mut archive = tar::Archive::new(archive);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let Some(inner) = strip_first(&path) else {
            continue;
        };
        let Some(top) = inner.components().next() else {
            continue;
        };
        let top = top.as_os_str().to_string_lossy().into_owned();
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mut out = tar::Header::new_gnu();
        out.set_entry_type(kind);
        out.set_mode(header.mode()?);
        out.set_uid(header.uid().unwrap_or(0));
        out.set_gid(header.gid().unwrap_or(0));
        out.set_mtime(header.mtime()?);
        out.set_size(0);
        if open.as_ref().is_none_or(|(name, _)| *name != top) {
            if let Some((name, part)) = open.take() {
                parts.push((name, part.finish()?));
            }
            let file = dir.join(format!("part-{}", parts.len()));
            open = Some((top.clone(), Part::create(file)?));
        }
        let (_, part) = open.as_mut().expect("a part was just opened");
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                out.set_entry_type(tar::EntryType::Regular);
                out.set_size(header.size()?);
                split.bytes += header.size()?;
                part.tar.append_data(&mut out, &inner, &mut entry)?;
            }
            tar::EntryType::Directory => part.tar.append_data(&mut out, &inner, io::empty())?,
            tar::EntryType::Symlink => {
                let target = entry.link_name()?.unwrap_or_default().into_owned();
                part.tar.append_link(&mut out, &inner, target)?;
            }
            tar::EntryType::Link => {
                let target = entry.link_name()?.unwrap_or_default().into_owned();
                match strip_first(&target) {
                    Some(target) if target.starts_with(&top) => {
                        part.tar.append_link(&mut out, &inner, target)?
                    }
                    _ => split.left_out += 1,
                }
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                out.set_device_major(header.device_major()?.unwrap_or(0))?;
                out.set_device_minor(header.device_minor()?.unwrap_or(0))?;
                part.tar.append_data(&mut out, &inner, io::empty())?;
            }
            tar::EntryType::Fifo => part.tar.append_data(&mut out, &inner, io::empty())?,
            _ => split.left_out += 1,
        }
    }
    if let Some((name, part)) = open {
        parts.push((name, part.finish()?));
    }
    if parts.len() > MAX_LAYERS {
        parts = merge(parts, dir)?;
    }
    split.layers = parts.into_iter().map(|(_, layer)| layer).collect();
    Ok(split)
}

/// `path` without its first component; `None` for the folder itself.
fn strip_first(path: &Path) -> Option<PathBuf> {
    let mut components = path.components();
    components.next()?;
    let rest = components.as_path();
    (!rest.as_os_str().is_empty()).then(|| rest.to_path_buf())
}

/// Entries (in order) into [`MAX_LAYERS`] layers by a hash of their names, so that a new entry
/// changes one layer, not every later one.
fn merge(parts: Vec<(String, Layer)>, dir: &Path) -> io::Result<Vec<(String, Layer)>> {
    let mut buckets: BTreeMap<usize, Vec<Layer>> = BTreeMap::new();
    for (name, layer) in parts {
        let hash = Sha256::digest(name.as_bytes());
        let bucket = usize::from(hash[0]) % MAX_LAYERS;
        buckets.entry(bucket).or_default().push(layer);
    }
    let mut merged = Vec::new();
    for (bucket, layers) in buckets {
        let mut part = Part::create(dir.join(format!("bucket-{bucket}")))?;
        for layer in &layers {
            let gz = flate2::read::GzDecoder::new(BufReader::new(File::open(&layer.file)?));
            let mut archive = tar::Archive::new(gz);
            for entry in archive.entries()? {
                let mut entry = entry?;
                let mut header = entry.header().clone();
                let path = entry.path()?.into_owned();
                match header.entry_type() {
                    tar::EntryType::Symlink | tar::EntryType::Link => {
                        let target = entry.link_name()?.unwrap_or_default().into_owned();
                        part.tar.append_link(&mut header, &path, target)?;
                    }
                    _ => part.tar.append_data(&mut header, &path, &mut entry)?,
                }
            }
            std::fs::remove_file(&layer.file)?;
        }
        merged.push((bucket.to_string(), part.finish()?));
    }
    Ok(merged)
}

/// A layer's gzip, hashed on its way to the file.
type Gzip = GzEncoder<Hashing<BufWriter<File>>>;

/// One layer being written: tar, hashed, cut into blocks, gzip, hashed, file.
struct Part {
    file: PathBuf,
    tar: tar::Builder<Hashing<Blocks<Gzip>>>,
}

impl Part {
    fn create(file: PathBuf) -> io::Result<Part> {
        let out = Hashing::new(BufWriter::new(File::create(&file)?));
        let gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(out, Compression::fast());
        let tar = tar::Builder::new(Hashing::new(Blocks::new(gz)));
        Ok(Part { file, tar })
    }

    fn finish(self) -> io::Result<Layer> {
        let tarred = self.tar.into_inner()?;
        let diff_id = tarred.digest();
        let gz = tarred.inner.finish()?.finish()?;
        let size = gz.count;
        let digest = gz.digest();
        gz.inner
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        Ok(Layer {
            file: self.file,
            digest,
            diff_id,
            size,
        })
    }
}

/// A writer that passes on what it is given in blocks of [`BLOCK`] bytes (the last one shorter),
/// however the writes that reach it are cut.
struct Blocks<W: Write> {
    inner: W,
    block: Vec<u8>,
}

impl<W: Write> Blocks<W> {
    fn new(inner: W) -> Blocks<W> {
        Blocks {
            inner,
            block: Vec::with_capacity(BLOCK),
        }
    }

    /// The inner writer, after the last block.
    fn finish(mut self) -> io::Result<W> {
        self.inner.write_all(&self.block)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Blocks<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.inner.write_all(&self.block)?;
            self.block.clear();
        }
        Ok(n)
    }

    /// Passes on no partial block: a flush must not change where blocks are cut.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    count: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hash: Sha256::new(),
            count: 0,
        }
    }

    fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hash.clone().finalize()))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The image config and manifest of `layers` for `platform`, labelled with the mount's `id`:
/// both as bytes, with their keys in a fixed order.
pub fn image(layers: &[Layer], platform: &Platform, id: &str) -> (Vec<u8>, Vec<u8>) {
    let mut config = serde_json::json!({
        "architecture": platform.architecture(),
        "os": platform.os(),
        "config": { "Labels": { LABEL: id } },
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
    });
    if let Some(variant) = platform.variant() {
        config["variant"] = variant.into();
    }
    let config = serde_json::to_vec(&config).unwrap_or_default();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {
            "mediaType": CONFIG,
            "size": config.len(),
            "digest": sha256_digest(&config),
        },
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": LAYER,
            "size": l.size,
            "digest": l.digest,
        })).collect::<Vec<_>>(),
    });
    (config, serde_json::to_vec(&manifest).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `folder/` holding `files` (`name`, content, mtime), as the daemon sends one.
    fn archive(folder: &str, files: &[(&str, &str, u64)]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_ustar();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_size(0);
        tar.append_data(&mut dir, format!("{folder}/"), io::empty())
            .unwrap();
        for (name, content, mtime) in files {
            let mut header = tar::Header::new_ustar();
            header.set_mode(0o644);
            header.set_size(content.len() as u64);
            header.set_mtime(*mtime);
            header.set_uid(1000);
            header.set_gid(1000);
            tar.append_data(&mut header, format!("{folder}/{name}"), content.as_bytes())
                .unwrap();
        }
        tar.into_inner().unwrap()
    }

    fn digests(files: &[(&str, &str, u64)]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let split = split(archive("copy", files).as_slice(), dir.path()).unwrap();
        split.layers.iter().map(|l| l.digest.clone()).collect()
    }

    #[test]
    fn one_layer_per_top_level_entry_each_made_of_its_files_only() {
        let files = [
            ("a/1", "one", 10),
            ("a/2", "two", 10),
            ("b/1", "x", 10),
            ("c", "file", 10),
        ];
        let first = digests(&files);
        assert_eq!(first.len(), 3, "a, b and c");
        assert_eq!(digests(&files), first, "the same files, the same bytes");
        let changed = digests(&[
            ("a/1", "one", 10),
            ("a/2", "two", 10),
            ("b/1", "y", 10),
            ("c", "file", 10),
        ]);
        assert_eq!(changed[0], first[0]);
        assert_ne!(changed[1], first[1], "b changed");
        assert_eq!(changed[2], first[2]);
        let touched = digests(&[
            ("a/1", "one", 11),
            ("a/2", "two", 10),
            ("b/1", "x", 10),
            ("c", "file", 10),
        ]);
        assert_ne!(touched[0], first[0], "a modification time counts");
    }

    #[test]
    fn the_layers_hold_the_files_under_their_own_names() {
        let dir = tempfile::tempdir().unwrap();
        let split = split(
            archive("copy", &[("a/1", "one", 10)]).as_slice(),
            dir.path(),
        )
        .unwrap();
        assert_eq!(split.bytes, 3);
        let layer = &split.layers[0];
        let bytes = std::fs::read(&layer.file).unwrap();
        assert_eq!(sha256_digest(&bytes), layer.digest);
        assert_eq!(layer.size, bytes.len() as u64);
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(sha256_digest(&tar), layer.diff_id);
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<(String, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(names, [("a/1".to_owned(), 10, 1000)]);
    }

    #[test]
    fn many_entries_share_a_bounded_number_of_layers() {
        let names: Vec<String> = (0..300).map(|i| format!("f{i}")).collect();
        let files: Vec<(&str, &str, u64)> = names.iter().map(|n| (n.as_str(), "x", 1)).collect();
        let first = digests(&files);
        assert!(
            first.len() <= MAX_LAYERS && first.len() > 32,
            "{}",
            first.len()
        );
        let mut more = files.clone();
        more.push(("g-new", "y", 1));
        let after = digests(&more);
        let same = after.iter().filter(|d| first.contains(d)).count();
        assert_eq!(same, first.len() - 1, "a new entry changes one layer");
    }

    /// Text like a downloaded package's: lines of random hex digits, from a fixed seed.
    fn package_text(lines: usize) -> Vec<u8> {
        let mut seed: u64 = 20240717;
        let mut text = String::new();
        for _ in 0..lines {
            for _ in 0..16 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                text += &format!("{:04x}", seed >> 48);
            }
            text.push('\n');
        }
        text.into_bytes()
    }

    /// The digest of a layer whose bytes reach it in writes of changing sizes, at most `modulus`.
    fn written_in_pieces(bytes: &[u8], modulus: usize) -> String {
        let dir = tempfile::tempdir().unwrap();
        let mut part = Part::create(dir.path().join("part")).unwrap();
        let (mut rest, mut step) = (bytes, 1);
        while !rest.is_empty() {
            step = (step * 7 + 3) % modulus + 1;
            let n = step.min(rest.len());
            part.tar.get_mut().write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        part.finish().unwrap().digest
    }

    #[test]
    fn the_gzip_bytes_do_not_depend_on_how_the_writes_are_cut() {
        let text = package_text(20_000);
        let whole = written_in_pieces(&text, text.len());
        for modulus in [7, 61, 512, 8192, 9973, 100_000] {
            assert_eq!(
                written_in_pieces(&text, modulus),
                whole,
                "writes of at most {modulus} bytes"
            );
        }
    }

    #[test]
    fn the_image_names_its_layers_and_the_mount() {
        let layer = Layer {
            file: PathBuf::new(),
            digest: "sha256:aa".into(),
            diff_id: "sha256:bb".into(),
            size: 7,
        };
        let platform = Platform::parse("linux/arm/v7").unwrap();
        let (config, manifest) = image(&[layer], &platform, "npm");
        let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], "sha256:bb");
        assert_eq!(config["variant"], "v7");
        assert_eq!(config["config"]["Labels"][LABEL], "npm");
        let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        assert_eq!(manifest["layers"][0]["digest"], "sha256:aa");
        assert_eq!(manifest["layers"][0]["size"], 7);
    }
}
