//! `cache_mounts`: the content of `RUN --mount=type=cache` mounts, kept in the push registry
//! between runs, so that a build on an empty daemon (every CodeBuild host) starts with the
//! packages the last run downloaded.
//!
//! A cache mount lives in the daemon's BuildKit, keyed by its `id` (the target when no `id` is
//! given); any build that mounts the same `id` sees the same content, whatever its target. So
//! ecrship fills and reads a mount with small builds of its own ("helpers"): the user's
//! Dockerfile with one stage appended, `FROM` the base of the stage that mounts the cache, whose
//! one `RUN` mounts the same `id` (with the same `sharing`, `uid`, `gid` and `mode`) and copies
//! into it or out of it. The user's stages are not touched, and the helper stage runs as root
//! through `/bin/sh` (a base without a shell or `cp` cannot be filled this way).
//!
//! - Restore, before the image's build: a helper that bind-mounts the stored image
//!   (`<repository>:cache-mount-<id>`) and copies its files into the mount, only when the mount
//!   is empty.
//! - Save, after a release pushed: a helper that copies the mount into its own image (or only
//!   measures it, when it is larger than `cache_mount_max_size`); ecrship reads that copy
//!   through the Engine API and stores it as an image of one layer per top-level entry of the
//!   mount ([`layers`]), whose bytes depend only on the files, so an unchanged part is never
//!   uploaded again, and an unchanged mount uploads nothing.
//!
//! This module holds what needs no daemon: which mounts are kept, their tags, and the helpers'
//! Dockerfiles. `pipeline::mounts` runs them.

pub mod layers;

use crate::config::CacheMounts;
use crate::dockerfile::{Base, CacheMount, Dockerfile, Sharing};

/// The stage a helper appends, and builds as its target.
pub const STAGE: &str = "ecrship-cache-mount";
/// Where a helper mounts the cache.
const MOUNT: &str = "/ecrship-cache-mount";
/// Where the restore helper binds the stored content.
const RESTORE: &str = "/ecrship-cache-mount.restore";
/// Where the save helper copies the mount, and the file it writes the mount's size to (KiB).
pub const COPY: &str = "/ecrship-cache-mount.copy";
pub const SIZE_FILE: &str = "/ecrship-cache-mount.size";

/// A cache mount `cache_mounts` keeps, in one image's Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub mount: CacheMount,
    /// The tag its content is stored under: `cache-mount-<id>`, `-<arch>` for one platform of
    /// a multi-platform image.
    pub tag: String,
    /// What the helper stage is `FROM`: the image or the stage the mount's stage starts from.
    pub base: String,
    /// The `--platform` of the mount's stage, when it has one.
    pub platform: Option<String>,
}

/// The cache mounts of `parsed`'s `needed` stages that `selection` keeps, each `id` once, with
/// why any other selected mount cannot be kept. `suffix` is the platform's tag suffix for one
/// platform of a multi-platform image.
pub fn kept(
    parsed: &Dockerfile,
    needed: &[usize],
    selection: &CacheMounts,
    suffix: Option<&str>,
) -> (Vec<Kept>, Vec<String>) {
    let mut kept: Vec<Kept> = Vec::new();
    let mut refused = Vec::new();
    for stage in parsed.stages.iter().filter(|s| needed.contains(&s.index)) {
        for mount in &stage.cache_mounts {
            if !selection.keeps(&mount.id, &mount.target)
                || kept.iter().any(|k| k.mount.id == mount.id)
            {
                continue;
            }
            let at = format!(
                "the cache mount `{}` (Dockerfile line {})",
                mount.id, mount.line
            );
            if mount.from.is_some() {
                refused.push(format!(
                    "{at} starts from `from=`: its content is an image's, and is not kept"
                ));
                continue;
            }
            if let Some(why) = id_violation(&mount.id) {
                refused.push(format!("{at} is not kept: its id {why}"));
                continue;
            }
            let base = match &stage.base {
                Base::Image(image) => image.value.clone(),
                Base::Stage(index) => {
                    match parsed.stages.get(*index).and_then(|s| s.name.clone()) {
                        Some(name) => name,
                        None => {
                            refused.push(format!(
                                "{at} is not kept: its stage starts from an unnamed stage"
                            ));
                            continue;
                        }
                    }
                }
                Base::Scratch => {
                    refused.push(format!(
                        "{at} is not kept: its stage is FROM scratch, with no shell to fill the mount"
                    ));
                    continue;
                }
            };
            kept.push(Kept {
                tag: tag(&mount.id, suffix),
                mount: mount.clone(),
                base,
                platform: stage.platform.clone(),
            });
        }
    }
    (kept, refused)
}

/// Why an `id` cannot be written into a helper's `--mount` (which BuildKit reads as CSV, with
/// `$` expanded).
fn id_violation(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("is empty")
    } else if id.chars().any(|c| {
        c.is_whitespace() || c.is_control() || matches!(c, ',' | '"' | '\'' | '$' | '=' | '\\')
    }) {
        Some("holds a character that a mount option cannot carry unquoted")
    } else {
        None
    }
}

/// `cache-mount-<id>[-<suffix>]` as a tag: the id's characters a tag cannot hold become `-`, and
/// an id that had any (or is long) gets 8 hex digits of its SHA-256, so that two ids never
/// share a tag.
pub fn tag(id: &str, suffix: Option<&str>) -> String {
    let mut slug: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    while slug.contains("--") {
        slug = slug.replace("--", "-");
    }
    let slug = slug.trim_matches(|c| c == '-' || c == '.').to_owned();
    let suffix = suffix.map(|s| format!("-{s}")).unwrap_or_default();
    // 128 characters at most: `cache-mount-`, the slug, a hash, the suffix.
    let room = 128 - "cache-mount-".len() - 9 - suffix.len();
    if slug == id && slug.len() <= room {
        return format!("cache-mount-{slug}{suffix}");
    }
    let hash = layers::sha256_digest(id.as_bytes());
    let short = &hash["sha256:".len().."sha256:".len() + 8];
    let slug: String = slug.chars().take(room).collect();
    let slug = if slug.is_empty() {
        "id".to_owned()
    } else {
        slug
    };
    format!("cache-mount-{slug}-{short}{suffix}")
}

/// The `--mount` of the cache in a helper: the same id and options, at [`MOUNT`].
fn mount_flag(mount: &CacheMount) -> String {
    let sharing = match mount.sharing {
        Sharing::Shared => "shared",
        Sharing::Private => "private",
        Sharing::Locked => "locked",
    };
    let mut flag = format!(
        "--mount=type=cache,id={},target={MOUNT},sharing={sharing}",
        mount.id
    );
    if let Some(uid) = mount.uid {
        flag.push_str(&format!(",uid={uid}"));
    }
    if let Some(gid) = mount.gid {
        flag.push_str(&format!(",gid={gid}"));
    }
    if let Some(mode) = mount.mode {
        flag.push_str(&format!(",mode=0{mode:o}"));
    }
    flag
}

/// The helper stage: `FROM` the kept mount's base, as root, running `script` with `/bin/sh`
/// (JSON form, so that a `SHELL` of the base does not apply) under `mounts`.
fn helper(builder_text: &str, kept: &Kept, mounts: &[String], script: &str) -> String {
    let platform = kept
        .platform
        .as_ref()
        .map(|p| format!("--platform={p} "))
        .unwrap_or_default();
    let command = serde_json::to_string(&["/bin/sh", "-c", script]).unwrap_or_default();
    let mut text = builder_text.to_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "FROM {platform}{} AS {STAGE}\nUSER 0\nRUN {} {command}\n",
        kept.base,
        mounts.join(" ")
    ));
    text
}

/// Copies every entry of `from` (dot files too, not the folder itself) into `to`.
fn copy_entries(from: &str, to: &str) -> String {
    format!(
        "for f in {from}/* {from}/.[!.]* {from}/..?*; do if [ -e \"$f\" ] || [ -L \"$f\" ]; then cp -a \"$f\" {to}/ || exit 1; fi; done"
    )
}

/// The restore helper: `builder_text` (the Dockerfile as the builder gets it) and a stage that
/// fills the mount from `stored` (the stored image, pinned by digest) when it is empty.
/// `nonce` makes the step run on every build (BuildKit would take it from its cache).
pub fn restore_dockerfile(builder_text: &str, kept: &Kept, stored: &str, nonce: &str) -> String {
    let script = format!(
        ": ecrship-cache-mount {} {nonce}; if [ -z \"$(ls -A {MOUNT})\" ]; then {}; fi",
        kept.tag,
        copy_entries(RESTORE, MOUNT)
    );
    let mounts = [
        mount_flag(&kept.mount),
        format!("--mount=type=bind,from={stored},target={RESTORE}"),
    ];
    helper(builder_text, kept, &mounts, &script)
}

/// The save helper: `builder_text` and a stage that writes the mount's size (KiB) to
/// [`SIZE_FILE`] and, when it is at most `max_kib`, copies it to [`COPY`].
pub fn save_dockerfile(builder_text: &str, kept: &Kept, max_kib: u64, nonce: &str) -> String {
    let script = format!(
        ": ecrship-cache-mount {} {nonce}; du -sk {MOUNT} | cut -f1 > {SIZE_FILE} && mkdir {COPY} && if [ \"$(cat {SIZE_FILE})\" -le {max_kib} ]; then {}; fi",
        kept.tag,
        copy_entries(MOUNT, COPY)
    );
    helper(builder_text, kept, &[mount_flag(&kept.mount)], &script)
}

/// Whether the daemon's build cache (`GET /system/df`, its `exec.cachemount` records) already
/// holds this mount: one made by a build that mounted it at its own target, or by a helper.
pub fn is_warm(descriptions: &[String], kept: &Kept) -> bool {
    let own = format!("cached mount {} from ", kept.mount.target);
    let helper = format!("ecrship-cache-mount {} ", kept.tag);
    descriptions
        .iter()
        .any(|d| d.starts_with(&own) || d.contains(&helper))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::{Args, parse};
    use std::collections::BTreeMap;

    fn read(text: &str, selection: &CacheMounts) -> (Vec<Kept>, Vec<String>) {
        let args = BTreeMap::from([("V".to_owned(), "npm".to_owned())]);
        let parsed = parse(
            text,
            &Args {
                build_args: &args,
                platform: "linux/amd64",
                build_platform: "linux/amd64",
                target: None,
            },
        )
        .unwrap();
        let needed = parsed.needed_stages(None).unwrap();
        kept(&parsed, &needed, selection, None)
    }

    const DOCKERFILE: &str = "FROM node:20 AS deps\n\
        ARG V\n\
        RUN --mount=type=cache,id=${V},target=/root/.npm,uid=1000,mode=0700 npm ci\n\
        RUN --mount=type=cache,target=/root/.npm,id=npm true\n\
        FROM deps AS build\n\
        RUN --mount=type=cache,target=/var/cache/apt,sharing=locked apt-get update\n\
        FROM scratch AS unused\n\
        RUN --mount=type=cache,target=/never true\n\
        FROM build\n\
        RUN --mount=type=cache,target=/c,from=deps,source=/x true\n";

    #[test]
    fn the_selected_mounts_of_the_needed_stages_are_kept_once() {
        let (kept, refused) = read(DOCKERFILE, &CacheMounts::All);
        let shown: Vec<(String, String, String)> = kept
            .iter()
            .map(|k| (k.mount.id.clone(), k.base.clone(), k.tag.clone()))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "npm".to_owned(),
                    "node:20".to_owned(),
                    "cache-mount-npm".to_owned()
                ),
                (
                    "/var/cache/apt".to_owned(),
                    "deps".to_owned(),
                    tag("/var/cache/apt", None)
                ),
            ]
        );
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0].contains("`from=`"), "{refused:?}");

        let (only, _) = read(
            DOCKERFILE,
            &CacheMounts::Only(vec!["/var/cache/apt".into()]),
        );
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].mount.sharing, Sharing::Locked);
        assert!(read(DOCKERFILE, &CacheMounts::Off).0.is_empty());
    }

    #[test]
    fn a_scratch_stage_cannot_be_filled() {
        let (kept, refused) = read(
            "FROM scratch\nRUN --mount=type=cache,target=/c true\n",
            &CacheMounts::All,
        );
        assert!(kept.is_empty());
        assert!(refused[0].contains("FROM scratch"), "{refused:?}");
    }

    #[test]
    fn tags_are_tags_and_ids_do_not_collide() {
        assert_eq!(tag("npm", None), "cache-mount-npm");
        assert_eq!(tag("npm", Some("arm64")), "cache-mount-npm-arm64");
        let a = tag("/root/.npm", None);
        let b = tag("/root-.npm", None);
        assert_ne!(a, b);
        assert!(a.starts_with("cache-mount-root-.npm-"), "{a}");
        let long = tag(&"x/".repeat(200), Some("arm-v7"));
        assert!(long.len() <= 128, "{long}");
        for t in [a, b, long, tag("/", None), tag("..", None)] {
            assert_eq!(crate::reference::tag_violation(&t), None, "{t}");
        }
    }

    #[test]
    fn helpers_mount_the_same_id_with_the_same_options() {
        let (kept, _) = read(DOCKERFILE, &CacheMounts::All);
        let restore = restore_dockerfile("FROM x\n", &kept[0], "r.example/app@sha256:ab", "n1");
        let last = restore.lines().last().unwrap();
        assert!(
            restore.starts_with("FROM x\nFROM node:20 AS ecrship-cache-mount\nUSER 0\n"),
            "{restore}"
        );
        assert!(
            last.starts_with("RUN --mount=type=cache,id=npm,target=/ecrship-cache-mount,sharing=shared,uid=1000,mode=0700 --mount=type=bind,from=r.example/app@sha256:ab,target=/ecrship-cache-mount.restore [\"/bin/sh\",\"-c\",\": ecrship-cache-mount cache-mount-npm n1; if"),
            "{last}"
        );
        let save = save_dockerfile("FROM x", &kept[1], 2048, "n2");
        assert!(
            save.contains("\nFROM deps AS ecrship-cache-mount\n"),
            "{save}"
        );
        assert!(save.contains("sharing=locked"), "{save}");
        assert!(save.contains("-le 2048"), "{save}");
        let parsed = parse(
            &save,
            &Args {
                build_args: &BTreeMap::new(),
                platform: "",
                build_platform: "linux/amd64",
                target: Some(STAGE),
            },
        )
        .unwrap();
        let needed = parsed.needed_stages(Some(STAGE)).unwrap();
        let (again, _) = kept_all(&parsed, &needed);
        assert_eq!(again, ["/var/cache/apt"], "the helper mounts the same id");
    }

    fn kept_all(parsed: &Dockerfile, needed: &[usize]) -> (Vec<String>, Vec<String>) {
        let stage = parsed
            .stages
            .iter()
            .find(|s| s.name.as_deref() == Some(STAGE))
            .unwrap();
        assert!(needed.contains(&stage.index));
        (
            stage.cache_mounts.iter().map(|m| m.id.clone()).collect(),
            Vec::new(),
        )
    }

    #[test]
    fn a_warm_daemon_is_told_by_its_build_cache() {
        let (kept, _) = read(DOCKERFILE, &CacheMounts::All);
        let npm = &kept[0];
        assert!(is_warm(
            &["cached mount /root/.npm from exec /bin/sh -c npm ci".into()],
            npm
        ));
        assert!(is_warm(
            &["cached mount /ecrship-cache-mount from exec /bin/sh -c : ecrship-cache-mount cache-mount-npm n1; if".into()],
            npm
        ));
        assert!(!is_warm(
            &["cached mount /root/.cache from exec x".into()],
            npm
        ));
    }
}
