//! Command-line definitions. Every flag has an `ECRSHIP_*` environment twin.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::context::Builder;

#[derive(Debug, Parser)]
#[command(
    name = "ecrship",
    version = crate::VERSION,
    about = "Build the images of an ECS task, push them to Amazon ECR and write imagedefinitions.json",
    after_help = "Exit codes: 0 ok, 1 a build, push or AWS failure, 2 bad usage, config or input, \
                  130/143 interrupted by SIGINT/SIGTERM."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Project root: where the tag file, the config and the build contexts are looked up
    #[arg(
        short = 'C',
        long = "directory",
        value_name = "DIR",
        env = "ECRSHIP_DIRECTORY",
        global = true,
        default_value = "."
    )]
    pub directory: PathBuf,

    /// Config file [default: DIR/ecrship.toml when it exists, else the built-in seed layout]
    #[arg(
        short = 'c',
        long,
        value_name = "FILE",
        env = "ECRSHIP_CONFIG",
        global = true
    )]
    pub config: Option<PathBuf>,

    /// More logs on stderr (-v: the details of each step, -vv: everything); ECRSHIP_VERBOSE=1|2
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors on stderr
    #[arg(
        short,
        long,
        env = "ECRSHIP_QUIET",
        global = true,
        conflicts_with = "verbose"
    )]
    pub quiet: bool,

    /// Format of the results on stdout
    #[arg(long, value_enum, env = "ECRSHIP_OUTPUT", global = true, default_value_t = Output::Text)]
    pub output: Output,

    /// When to color the output (NO_COLOR is honoured)
    #[arg(long, value_enum, env = "ECRSHIP_COLOR", global = true, default_value_t = Color::Auto)]
    pub color: Color,

    /// Registry host for image URIs, instead of the one ECR reports (`host[:port]`)
    #[arg(long, value_name = "HOST", env = "ECRSHIP_REGISTRY", global = true)]
    pub registry: Option<String>,

    /// Pull an upstream registry's images through a mirror: `docker.io=docker-hub` (an ECR
    /// pull-through cache prefix of the push registry) or `docker.io=public.ecr.aws/docker`
    /// (another registry's copies); comma-separated, over `[mirror]`
    #[arg(
        long,
        value_name = "UPSTREAM=TO",
        env = "ECRSHIP_MIRROR",
        global = true
    )]
    pub mirror: Option<String>,

    /// Build only this platform of multi-platform images, and only the images of this
    /// platform (`linux/amd64` for those without one): one job of a batch build
    #[arg(long, value_name = "OS/ARCH", env = "ECRSHIP_PLATFORM", global = true)]
    pub platform: Option<String>,

    /// How builds and pushes show on stderr: a live line per image (tty) or plain log lines;
    /// auto is tty when stderr is a terminal and CI is unset
    #[arg(long, value_enum, env = "ECRSHIP_PROGRESS", global = true, default_value_t = Progress::Auto)]
    pub progress: Progress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Progress {
    Auto,
    Tty,
    Plain,
}

// clap shows these doc comments as the help: `[deploy]` there names a table of ecrship.toml,
// not a link.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the resolved image tag (with -v, where it came from)
    Tag,
    /// Show what would be built and pushed, and the imagedefinitions.json that would be written
    Plan {
        /// Images to include (all by default)
        images: Vec<String>,
    },
    /// Build the images through the Docker API, in parallel
    Build {
        /// Images to build (all by default)
        images: Vec<String>,
        #[command(flatten)]
        build: BuildFlags,
        /// Call no AWS API and push nothing; still write imagedefinitions.json with the URIs a real run would write
        #[arg(long, env = "ECRSHIP_DRY_RUN")]
        dry_run: bool,
    },
    /// Log in to ECR, tag and push the built images, and write the deploy artifacts
    Push {
        /// Images to push (all by default)
        images: Vec<String>,
        #[command(flatten)]
        push: PushFlags,
        /// Say what would be pushed (tags, local image ids, reused images), with no login and
        /// no network; write nothing
        #[arg(long, env = "ECRSHIP_DRY_RUN")]
        dry_run: bool,
    },
    /// Join each multi-platform image's platforms into a manifest list under its tags, and
    /// write the artifacts; from the registry alone (the last job of a batch build)
    Manifest {
        /// Images to include (all by default)
        images: Vec<String>,
        #[command(flatten)]
        push: PushFlags,
    },
    /// Print the least-privilege IAM policy (JSON) that build and push need for this config
    Policy {
        /// Also allow ecr:CreateRepository (for --create-repositories)
        #[arg(long, env = "ECRSHIP_CREATE_REPOSITORIES")]
        create_repositories: bool,
        /// Print the policy of `ecrship source` instead: s3:PutObject on the zip, s3:GetBucketVersioning on its bucket
        #[arg(long, env = "ECRSHIP_POLICY_SOURCE")]
        source: bool,
        #[command(flatten)]
        object: SourceObject,
    },
    /// Zip the sources with .git-commit-hash and upload the zip to the versioned S3 bucket that starts the pipeline
    Source {
        #[command(flatten)]
        object: SourceObject,
        /// Also keep the zip in FILE (a dry-run writes src.zip when not given)
        #[arg(long, value_name = "FILE", env = "ECRSHIP_SOURCE_OUT")]
        out: Option<PathBuf>,
        /// Write the zip, call no AWS API and upload nothing
        #[arg(long, env = "ECRSHIP_DRY_RUN")]
        dry_run: bool,
    },
    /// Check imagedefinitions.json against the task definition of the ECS service in [deploy]
    Verify,
    /// Build, then push: one command for a single-phase buildspec or a laptop
    Release {
        /// Images to build and push (all by default)
        images: Vec<String>,
        #[command(flatten)]
        build: BuildFlags,
        #[command(flatten)]
        push: PushFlags,
        /// Build for real, but call no AWS API and push nothing; still write the artifacts
        #[arg(long, env = "ECRSHIP_DRY_RUN")]
        dry_run: bool,
    },
}

#[allow(rustdoc::broken_intra_doc_links)]
#[derive(Debug, Clone, Args)]
pub struct SourceObject {
    /// S3 bucket of the pipeline's source stage, versioning on [default: [source] bucket]
    #[arg(long, value_name = "BUCKET", env = "ECRSHIP_SOURCE_BUCKET")]
    pub bucket: Option<String>,
    /// Object key of the source zip in that bucket [default: [source] key]
    #[arg(long, value_name = "KEY", env = "ECRSHIP_SOURCE_KEY")]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct BuildFlags {
    /// How many images build at once [default: jobs in the config, else one per image]
    #[arg(short, long, env = "ECRSHIP_JOBS", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Builder: buildkit (default) or classic [default: builder in the config]
    #[arg(long, env = "ECRSHIP_BUILDER", value_parser = parse_builder)]
    pub builder: Option<Builder>,
    /// Do not use the build cache
    #[arg(long, env = "ECRSHIP_NO_CACHE")]
    pub no_cache: bool,
    /// Always try to pull newer versions of the base images (and reuse nothing)
    #[arg(long, env = "ECRSHIP_PULL")]
    pub pull: bool,
    /// Build every image, even one the registry holds from the same inputs
    #[arg(long, env = "ECRSHIP_REBUILD")]
    pub rebuild: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PushFlags {
    /// Write `repository@sha256:...` URIs into the artifacts instead of `repository:tag`
    #[arg(long, env = "ECRSHIP_PIN_DIGEST")]
    pub pin_digest: bool,
    /// Create ECR repositories that do not exist yet
    #[arg(long, env = "ECRSHIP_CREATE_REPOSITORIES")]
    pub create_repositories: bool,
}

fn parse_builder(value: &str) -> Result<Builder, String> {
    match value {
        "buildkit" => Ok(Builder::BuildKit),
        "classic" => Ok(Builder::Classic),
        other => Err(format!("`{other}` is not a builder (buildkit or classic)")),
    }
}
