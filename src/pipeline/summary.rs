//! The result of a run: one row per image built or reused, printed as a table or as JSON.

use std::fmt;

use serde::Serialize;

use crate::plan::PlannedImage;
use crate::reference::{Platform, Reference};
use crate::registry::Manifest;
use crate::text::human_bytes;

/// The result of a run, printed at the end.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub tag: String,
    pub images: Vec<ImageSummary>,
    /// Manifest lists written for multi-platform images.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<ListSummary>,
    pub artifacts: Vec<String>,
    /// Why the registry was not asked about images to reuse, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reuse_skipped: Option<String>,
    /// The kept cache mounts a release saved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cache_mounts: Vec<super::mounts::MountSummary>,
}

/// What happened to an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Built on the daemon.
    Built,
    /// Not built: the registry's image with the same inputs was used.
    Reused,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Built => "built",
            Action::Reused => "reused",
        })
    }
}

/// Where a reused image came from.
#[derive(Debug, Clone, Serialize)]
pub struct ReusedFrom {
    pub tag: String,
    pub digest: String,
}

/// One image of the run.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSummary {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// `<repository>:<tag>`, the local name.
    pub image: String,
    /// The URI the artifacts name, or the one pushed for one platform of several.
    pub uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<ReusedFrom>,
    /// For an image built: why it was not reused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_reused: Option<String>,
    /// The inputs digest stored on the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_seconds: Option<f64>,
    /// What a `push --dry-run` would push for it, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_push: Vec<String>,
    /// The table's first two columns: the name (with the platform, for one platform of
    /// several) and the tag.
    #[serde(skip)]
    shown: (String, String),
}

/// A manifest list joining the platforms of one image.
#[derive(Debug, Clone, Serialize)]
pub struct ListSummary {
    pub name: String,
    pub uri: String,
    pub digest: String,
    pub media_type: String,
    pub platforms: Vec<String>,
}

impl ImageSummary {
    /// The row of one build: of `name`, for `platform` (`one_of_several` platforms of a
    /// multi-platform image, or not), whose local image is `image`, pushed as `uri`.
    pub fn new(
        name: &str,
        platform: Option<&Platform>,
        one_of_several: bool,
        image: String,
        uri: &Reference,
    ) -> Self {
        let shown_name = match platform {
            Some(platform) if one_of_several => format!("{name} ({platform})"),
            _ => name.to_owned(),
        };
        ImageSummary {
            name: name.to_owned(),
            platform: platform.map(Platform::to_string),
            image,
            uri: uri.to_string(),
            action: None,
            reused_from: None,
            not_reused: None,
            inputs: None,
            image_id: None,
            size: None,
            build_seconds: None,
            digest: None,
            push_seconds: None,
            would_push: Vec::new(),
            shown: (shown_name, uri.identifier().to_owned()),
        }
    }
}

impl ListSummary {
    /// The list of `image`'s platforms, as `manifest`.
    pub fn new(image: &PlannedImage, manifest: &Manifest) -> ListSummary {
        ListSummary {
            name: image.name.clone(),
            uri: image.uri.to_string(),
            digest: manifest.digest.clone(),
            media_type: manifest.media_type.clone(),
            platforms: image.platforms.iter().map(Platform::to_string).collect(),
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let acted = self.images.iter().any(|i| i.action.is_some());
        let built = self.images.iter().any(|i| i.image_id.is_some());
        let pushed = self.images.iter().any(|i| i.digest.is_some());
        let mut header = vec!["IMAGE", "TAG"];
        if acted {
            header.push("ACTION");
        }
        if built {
            header.extend(["IMAGE ID", "SIZE", "BUILD"]);
        }
        if pushed {
            header.extend(["DIGEST", "PUSH"]);
        }
        let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
        let seconds = |s: Option<f64>| s.map(|s| format!("{s:.1}s")).unwrap_or_default();
        for image in &self.images {
            let mut row = vec![image.shown.0.clone(), image.shown.1.clone()];
            if acted {
                row.push(match (&image.action, &image.reused_from) {
                    (Some(Action::Reused), Some(from)) => format!("reused from {}", from.tag),
                    (Some(action), _) => action.to_string(),
                    (None, _) => String::new(),
                });
            }
            if built {
                row.push(
                    image
                        .image_id
                        .as_deref()
                        .map(short_id)
                        .unwrap_or_default()
                        .to_owned(),
                );
                row.push(image.size.map(human_bytes).unwrap_or_default());
                row.push(seconds(image.build_seconds));
            }
            if pushed {
                row.push(image.digest.clone().unwrap_or_default());
                row.push(seconds(image.push_seconds));
            }
            rows.push(row);
        }
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
            .collect();
        for row in &rows {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            writeln!(f, "{}", line.join("  ").trim_end())?;
        }
        for image in &self.images {
            if let Some(why) = &image.not_reused {
                writeln!(f, "{} built, not reused: {why}", image.shown.0)?;
            }
        }
        for image in self.images.iter().filter(|i| !i.would_push.is_empty()) {
            writeln!(
                f,
                "{} would push {}",
                image.name,
                image.would_push.join(", ")
            )?;
        }
        for list in &self.lists {
            writeln!(
                f,
                "list {} ({}) -> {}",
                list.uri,
                list.platforms.join(", "),
                list.digest
            )?;
        }
        for path in &self.artifacts {
            writeln!(f, "wrote {path}")?;
        }
        Ok(())
    }
}

/// The first 12 hex digits of an image id.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_what_happened_to_each_image() {
        let uri = |s: &str| Reference::parse(s).unwrap();
        let mut built = ImageSummary::new(
            "app",
            None,
            false,
            "app:v2".into(),
            &uri("r.example/app:v2"),
        );
        built.action = Some(Action::Built);
        built.image_id = Some("sha256:0123456789abcdef".into());
        built.size = Some(1_500);
        built.build_seconds = Some(2.0);
        built.not_reused = Some("app:latest was built from other inputs: the context (lib)".into());
        let mut reused = ImageSummary::new(
            "web",
            None,
            false,
            "web:v2".into(),
            &uri("r.example/web:v2"),
        );
        reused.action = Some(Action::Reused);
        reused.reused_from = Some(ReusedFrom {
            tag: "latest".into(),
            digest: "sha256:aa".into(),
        });
        let summary = Summary {
            tag: "v2".into(),
            images: vec![built, reused],
            artifacts: vec!["imagedefinitions.json".into()],
            ..Summary::default()
        };
        let text = summary.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "IMAGE  TAG  ACTION              IMAGE ID      SIZE   BUILD"
        );
        assert_eq!(
            lines[1],
            "app    v2   built               0123456789ab  1.5kB  2.0s"
        );
        assert_eq!(lines[2], "web    v2   reused from latest");
        assert_eq!(
            lines[3],
            "app built, not reused: app:latest was built from other inputs: the context (lib)"
        );
        assert_eq!(lines[4], "wrote imagedefinitions.json");
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(
            json["images"][0]["not_reused"],
            "app:latest was built from other inputs: the context (lib)"
        );
        assert_eq!(json["images"][1]["action"], "reused");
        assert_eq!(json["images"][1]["reused_from"]["tag"], "latest");
    }
}
