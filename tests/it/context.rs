//! The build context against the Docker CLI and buildx, through the real daemon.
//!
//! For every case of the corpus below, an image `FROM scratch` + `COPY . /ctx/` is built four
//! times: by `DOCKER_BUILDKIT=0 docker build -f <dockerfile> .` (the classic CLI), by
//! `docker buildx build -f <dockerfile> .` (buildx with its `docker` driver, which is what
//! `docker build` is on today's images), and by `ecrship build` with `--builder classic` and
//! `--builder buildkit`. The entries under `ctx/` of each image (path, type, permission bits,
//! link target, size of regular files; not timestamps) must be equal: ecrship's classic build to
//! the classic CLI's, ecrship's BuildKit build to buildx's. Nothing is stored: the two tools'
//! images are the expectations, so a case only says what to put in the context.
//!
//! A case that the reference tool cannot build (Docker 28.5's BuildKit refuses file names that
//! are not UTF-8, from buildx as from ecrship) must fail with ecrship too.
//!
//! The cases of one group run one after the other, the four builds of a case at the same time;
//! the groups run in parallel.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;
use std::thread;

use crate::harness::{Test, docker_buildx_cli, docker_cli, unique_name};

const DOCKERFILE: &str = "FROM scratch\nCOPY . /ctx/\n";

// ---------------------------------------------------------------------------------------------
// Cases

/// One thing to make in the context folder `ctx/` (paths relative to it; `../x` lands in the
/// project root, outside the context).
enum Node {
    File(Vec<u8>, Vec<u8>),
    Dir(String),
    Symlink(String, String),
    HardLink(String, String),
    Fifo(String),
    Mode(String, u32),
}

struct Case {
    name: &'static str,
    nodes: Vec<Node>,
    /// The Dockerfile, relative to `ctx/` (`-f` of the CLI run inside `ctx/`).
    dockerfile: String,
}

fn case(name: &'static str) -> Case {
    Case {
        name,
        nodes: Vec::new(),
        dockerfile: "Dockerfile".into(),
    }
}

/// A tree most pattern cases share: names that the usual patterns tell apart.
const TREE: &[&str] = &[
    "a.txt",
    "b.txt",
    "ab.txt",
    "a.log",
    "keep.log",
    "README.md",
    "readme.md",
    "src/main.rs",
    "src/a.txt",
    "src/keep",
    "src/deep/x.txt",
    "src/deep/y.log",
    "src/deep/keep",
    "docs/guide.md",
    "docs/api/keep.md",
    "docs/api/index.html",
    "abc/x",
    "abc/keep/z",
    "abcd/y",
    "abc.txt",
    "axb",
    "a/b",
    "a/x/b",
    "node_modules/pkg/index.js",
    "node_modules/pkg/keep",
    "web/node_modules/x.js",
];

impl Case {
    fn file(mut self, path: &str, content: &str) -> Case {
        self.nodes.push(Node::File(path.into(), content.into()));
        self
    }

    /// Files whose content is their own name.
    fn files(mut self, paths: &[&str]) -> Case {
        for path in paths {
            self.nodes.push(Node::File(
                path.as_bytes().to_vec(),
                path.as_bytes().to_vec(),
            ));
        }
        self
    }

    fn raw_file(mut self, path: &[u8]) -> Case {
        self.nodes.push(Node::File(path.to_vec(), b"raw".to_vec()));
        self
    }

    fn tree(self) -> Case {
        self.files(TREE).dir("empty").dir("src/empty")
    }

    fn ignore(self, text: &str) -> Case {
        self.file(".dockerignore", text)
    }

    fn dir(mut self, path: &str) -> Case {
        self.nodes.push(Node::Dir(path.into()));
        self
    }

    fn symlink(mut self, path: &str, target: &str) -> Case {
        self.nodes.push(Node::Symlink(path.into(), target.into()));
        self
    }

    /// `path` becomes a second name of the existing `existing`.
    fn hard_link(mut self, path: &str, existing: &str) -> Case {
        self.nodes
            .push(Node::HardLink(path.into(), existing.into()));
        self
    }

    fn fifo(mut self, path: &str) -> Case {
        self.nodes.push(Node::Fifo(path.into()));
        self
    }

    /// Applied after everything is made.
    fn mode(mut self, path: &str, mode: u32) -> Case {
        self.nodes.push(Node::Mode(path.into(), mode));
        self
    }

    fn dockerfile(mut self, path: &str) -> Case {
        self.dockerfile = path.into();
        self
    }

    /// The Dockerfile's path in the project, for `ecrship.toml`.
    fn config_dockerfile(&self) -> String {
        match self.dockerfile.strip_prefix("../") {
            Some(outside) => outside.to_string(),
            None => format!("ctx/{}", self.dockerfile),
        }
    }

    /// Makes the context under `ctx` (the Dockerfile unless a node made it).
    fn make(&self, ctx: &Path) {
        fs::create_dir_all(ctx).unwrap();
        let at = |rel: &[u8]| ctx.join(std::ffi::OsStr::from_bytes(rel));
        let parent = |path: &Path| fs::create_dir_all(path.parent().unwrap()).unwrap();
        for node in &self.nodes {
            match node {
                Node::File(rel, content) => {
                    let path = at(rel);
                    parent(&path);
                    fs::write(&path, content).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
                }
                Node::Dir(rel) => fs::create_dir_all(at(rel.as_bytes())).unwrap(),
                Node::Symlink(rel, target) => {
                    let path = at(rel.as_bytes());
                    parent(&path);
                    symlink(target, &path).unwrap_or_else(|e| panic!("symlink {path:?}: {e}"));
                }
                Node::HardLink(rel, existing) => {
                    let path = at(rel.as_bytes());
                    parent(&path);
                    fs::hard_link(at(existing.as_bytes()), &path)
                        .unwrap_or_else(|e| panic!("link {path:?}: {e}"));
                }
                Node::Fifo(rel) => {
                    let path = at(rel.as_bytes());
                    parent(&path);
                    let status = Command::new("mkfifo").arg(&path).status().unwrap();
                    assert!(status.success(), "mkfifo {path:?}");
                }
                Node::Mode(..) => {}
            }
        }
        let dockerfile = ctx.join(&self.dockerfile);
        if fs::symlink_metadata(&dockerfile).is_err() {
            parent(&dockerfile);
            fs::write(&dockerfile, DOCKERFILE).unwrap();
        }
        for node in &self.nodes {
            if let Node::Mode(rel, mode) = node {
                let path = ctx.join(rel);
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode))
                    .unwrap_or_else(|e| panic!("chmod {path:?}: {e}"));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The corpus

#[test]
fn globs_match_as_the_cli() {
    check(vec![
        case("no .dockerignore").tree(),
        case("empty .dockerignore").tree().ignore(""),
        case("exact file at the top only").tree().ignore("a.txt\n"),
        case("exact folder with its content").tree().ignore("src\n"),
        case("exact nested path").tree().ignore("src/deep/x.txt\n"),
        case("* at the top does not reach subfolders")
            .tree()
            .ignore("*.txt\n"),
        case("folder/* keeps the folder").tree().ignore("src/*\n"),
        case("* and ? do not cross /")
            .tree()
            .ignore("a*b\n?.txt\na?b\n"),
        case("leading **/ with a glob").tree().ignore("**/*.log\n"),
        case("leading **/ with a name, files and folders")
            .tree()
            .ignore("**/keep\n"),
        case("middle /**/ matches zero or more folders")
            .tree()
            .ignore("src/**/x.txt\na/**/b\ndocs/**/keep.md\n"),
        case("trailing /** does not match the folder itself")
            .tree()
            .ignore("abc/**\n"),
        case("** glued to a name is a raw suffix")
            .tree()
            .ignore("**.md\n"),
        case("** alone excludes everything, exceptions bring back")
            .tree()
            .ignore("**\n!src\n!*.md\n"),
    ]);
}

#[test]
fn classes_escapes_and_runes_match_as_the_cli() {
    check(vec![
        case("class range [a-b]")
            .tree()
            .ignore("[a-b].txt\nsrc/[a-m]*\n"),
        case("class negated with ^").tree().ignore("[^a].txt\n"),
        case("[!a] is `!` or `a` (Go regexp), not a negation")
            .tree()
            .files(&["!.txt"])
            .ignore("[!a].txt\n"),
        case("escaped \\* and \\? are literal")
            .files(&["*", "star", "a?b", "axb"])
            .ignore("\\*\na\\?b\n"),
        case("regexp characters . + ( ) $ are literal")
            .files(&["a.b", "axb", "x+y", "xxy", "(p)", "p", "d$", "d"])
            .ignore("a.b\nx+y\n(p)\nd$\n"),
        case("{ } | keep their regexp meaning (moby's escape bitmap)")
            .files(&["zz", "z{2}", "q", "qa", "br", "q|r", "other"])
            .ignore("z{2}\nq|r\n"),
        case("? and classes take one rune of a non-ASCII name")
            .files(&["ö.txt", "oo.txt", "é1", "e1", "ü/x"])
            .ignore("?.txt\n[é]1\nü\n"),
        case("invalid UTF-8 byte matches ? as one rune")
            .raw_file(b"\xff.bin")
            .raw_file(b"\xfe\xfd.bin")
            .files(&["x.bin"])
            .ignore("?.bin\n"),
        case("names are case-sensitive")
            .tree()
            .ignore("readme.md\n"),
        case("hidden files and folders")
            .files(&[".git/HEAD", ".env", ".envrc", "x/.env"])
            .ignore(".git\n.env\n"),
    ]);
}

#[test]
fn dockerignore_syntax_as_the_cli() {
    check(vec![
        case("cleaning ./a/../b")
            .tree()
            .ignore("./a/../b.txt\nsrc/./deep/../a.txt\n"),
        case("trailing / is dropped, files match too")
            .tree()
            .ignore("src/deep/\na.txt/\n"),
        case("a//b is a/b").tree().ignore("src//deep\n"),
        case("leading / is the context root")
            .tree()
            .ignore("/a.txt\n/src/deep\n"),
        case("/.. is cleaned away, ../ matches nothing")
            .tree()
            .ignore("/../b.txt\n../ctx/a.txt\n"),
        case("whitespace around patterns and after !")
            .tree()
            .ignore("  a.txt  \n\t*.log\t\n!   keep.log  \n   \n"),
        case("# in column 0 is a comment, indented # is a pattern")
            .files(&["a.txt", "#a.txt", "b.txt", "#b.txt"])
            .ignore("#a.txt\n #b.txt\n"),
        case("UTF-8 BOM stripped from the first line only")
            .files(&["a.txt", "b.txt", "\u{feff}b.txt"])
            .ignore("\u{feff}a.txt\n\u{feff}b.txt\n"),
        case("CRLF line endings")
            .tree()
            .ignore("a.txt\r\n*.log\r\n"),
        case("no newline at the end").tree().ignore("a.txt\nb.txt"),
    ]);
}

/// A generated `.dockerignore` of `lines` patterns, each naming one file under `gen/` (the files
/// with an even number exist), then one exception that brings a file back: as monorepos and
/// generators write them.
fn long_ignore(lines: usize) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut files = Vec::new();
    for n in 0..lines {
        text.push_str(&format!("gen/part-{n:05}.txt\n"));
        if n % 2 == 0 {
            files.push(format!("gen/part-{n:05}.txt"));
        }
    }
    files.push("gen/kept.txt".into());
    text.push_str("!gen/part-00000.txt\n");
    (text, files)
}

#[test]
fn long_dockerignore_files_as_the_cli() {
    // The patterns travel as one request header each through BuildKit's session: 300 lines
    // already exceed 16 KiB, hyper's default header list limit.
    let cases = [
        (300, "300 generated lines"),
        (1_000, "1,000 generated lines"),
        (5_000, "5,000 generated lines"),
    ]
    .into_iter()
    .map(|(lines, name)| {
        let (text, files) = long_ignore(lines);
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        case(name).tree().files(&files).ignore(&text)
    })
    .collect();
    check(cases);
}

#[test]
fn exceptions_and_pruning_as_the_cli() {
    check(vec![
        case("exception after a glob")
            .tree()
            .ignore("*.log\n!keep.log\n"),
        case("the last match wins")
            .tree()
            .ignore("!keep.log\n*.log\n"),
        case("exception under an excluded folder: implied folder")
            .tree()
            .mode("src", 0o750)
            .ignore("src\n!src/keep\n"),
        case("deep exception under an excluded folder")
            .tree()
            .mode("src/deep", 0o700)
            .ignore("src\n!src/deep/keep\n"),
        case("dir + !dir/*/keep: the CLI prunes and loses the file")
            .tree()
            .ignore("docs\n!docs/*/keep.md\n"),
        case("dir + !**/keep: the CLI prunes and loses the file")
            .tree()
            .ignore("node_modules\n!**/keep\n"),
        case("dir + !dir/**: all back, folder implied")
            .tree()
            .mode("abc", 0o700)
            .ignore("abc\n!abc/**\n"),
        case("exception then re-excluded")
            .tree()
            .files(&["README.secret.md"])
            .ignore("*.md\n!README*.md\nREADME.secret.md\n"),
        case("folder exception, then a glob inside it")
            .tree()
            .ignore("src\n!src/deep\nsrc/deep/*.log\n"),
        case("**/ globs with a ** exception")
            .tree()
            .ignore("**/*.txt\n!src/**/*.txt\n"),
        case("parent results: a skipped exception stays skipped")
            .tree()
            .ignore("src/deep\n!src\n"),
        case("exception for a file in an excluded empty-looking folder")
            .files(&["out/a", "out/b/c"])
            .dir("out/empty")
            .ignore("out\n!out/b\n"),
    ]);
}

#[test]
fn dockerfile_and_dockerignore_as_the_cli() {
    check(vec![
        case(".dockerignore excludes itself")
            .tree()
            .ignore(".dockerignore\n*.log\n"),
        case("Dockerfile excluded").tree().ignore("Dockerfile\n"),
        case("* excludes both, ! brings a folder back")
            .tree()
            .ignore("*\n!src\n"),
        case("-f sub/Dockerfile")
            .tree()
            .dockerfile("docker/Dockerfile"),
        case("-f sub/Dockerfile in an excluded folder")
            .tree()
            .files(&["docker/notes"])
            .mode("docker", 0o700)
            .dockerfile("docker/Dockerfile")
            .ignore("docker\n"),
        case("-f sub/Dockerfile.app excluded by a glob")
            .tree()
            .dockerfile("docker/Dockerfile.app")
            .ignore("**/Dockerfile*\n"),
        case("-f app.Dockerfile excluded by a suffix glob")
            .tree()
            .dockerfile("app.Dockerfile")
            .ignore("*.Dockerfile\n"),
        case("-f ../Dockerfile, no .dockerignore")
            .tree()
            .dockerfile("../Dockerfile"),
        case("-f ../Dockerfile with a .dockerignore")
            .tree()
            .mode(".dockerignore", 0o640)
            .dockerfile("../docker/Dockerfile")
            .ignore("*.log\n"),
        case("-f ../Dockerfile, .dockerignore excludes itself")
            .tree()
            .dockerfile("../Dockerfile")
            .ignore(".dockerignore\n"),
        case("Dockerfile is a symlink into an excluded folder")
            .tree()
            .symlink("Dockerfile", "docker/real.Dockerfile")
            .file("docker/real.Dockerfile", DOCKERFILE)
            .ignore("docker\n")
            .dockerfile("Dockerfile"),
        case(".dockerignore is a symlink")
            .tree()
            .file("patterns.txt", "*.log\n")
            .symlink(".dockerignore", "patterns.txt"),
        case(".dockerignore has a second hard link")
            .tree()
            .ignore("*.log\n")
            .hard_link("z-ignore", ".dockerignore"),
        case(".dockerignore has a second hard link and excludes itself")
            .tree()
            .ignore(".dockerignore\n*.log\n")
            .hard_link("z-ignore", ".dockerignore"),
        case(".dockerignore is the second name of an earlier file")
            .tree()
            .file(".a-patterns", "*.log\n")
            .hard_link(".dockerignore", ".a-patterns"),
        case("-f ../Dockerfile, .dockerignore has a second hard link")
            .tree()
            .ignore("*.log\n")
            .hard_link("z-ignore", ".dockerignore")
            .dockerfile("../Dockerfile"),
        case("excluded Dockerfile has a second hard link")
            .tree()
            .file("Dockerfile", DOCKERFILE)
            .hard_link("z-copy", "Dockerfile")
            .ignore("Dockerfile\n"),
    ]);
}

#[test]
fn files_on_disk_as_the_cli() {
    let long_dir = "d".repeat(90);
    let long_file = format!("{long_dir}/{}", "f".repeat(120));
    let longer = format!("{long_dir}/{}/{}", "e".repeat(100), "g".repeat(200));
    let long_target = "t".repeat(150);
    check(vec![
        case("symlinks inside, outside, dangling, looping")
            .files(&["real/file", "top"])
            .file("../secret", "outside")
            .symlink("to-file", "top")
            .symlink("to-dir", "real")
            .symlink("to-outside", "../secret")
            .symlink("absolute", "/etc/passwd")
            .symlink("dangling", "nowhere/at/all")
            .symlink("loop1", "loop2")
            .symlink("loop2", "loop1")
            .symlink("self", "self")
            .symlink("odd", "a/./b//c/")
            .symlink("real/up", "../top"),
        case("symlinks are not followed by patterns")
            .files(&["real/file", "real/other"])
            .symlink("to-dir", "real")
            .symlink("to-excluded", "real/other")
            .ignore("to-dir/*\nreal/other\n"),
        case("file and folder modes")
            .files(&[
                "x755",
                "x600",
                "x444",
                "x700",
                "suid",
                "sgid",
                "both",
                "sgid-noexec",
                "d711/f",
                "d700/f",
                "sticky/f",
                "sgid-dir/f",
            ])
            .mode("x755", 0o755)
            .mode("x600", 0o600)
            .mode("x444", 0o444)
            .mode("x700", 0o700)
            .mode("suid", 0o4755)
            .mode("sgid", 0o2755)
            .mode("both", 0o6755)
            .mode("sgid-noexec", 0o2644)
            .mode("d711", 0o711)
            .mode("d700", 0o700)
            .mode("sticky", 0o1777)
            .mode("sgid-dir", 0o2775),
        case("empty folders")
            .files(&["x"])
            .dir("empty")
            .dir("nested/empty/deeper")
            .dir("private")
            .dir("excluded-empty")
            .mode("private", 0o700)
            .ignore("excluded-empty\n"),
        case("long names and link targets")
            .files(&[long_file.as_str(), longer.as_str()])
            .symlink("long-target", &long_target)
            .symlink(&format!("{long_dir}/{}", "s".repeat(110)), "x")
            .hard_link(&format!("{long_dir}/{}", "h".repeat(105)), &long_file),
        case("non-ASCII names")
            .files(&[
                "héllo wörld ✓.txt",
                "日本語/ファイル.txt",
                "emoji😀",
                "with space",
                "-dash",
                "tab\tname",
                "quote\"s",
            ])
            .raw_file(b"latin1-\xe9"),
        case("hard links")
            .files(&["a", "sub/c", "excluded-first", "z"])
            .hard_link("b", "a")
            .hard_link("sub/d", "a")
            .hard_link("sub/e", "sub/c")
            .hard_link("y-of-excluded", "excluded-first")
            .hard_link("in-pruned/a", "z")
            .file("../outside", "outside")
            .hard_link("to-outside", "../outside")
            .ignore("excluded-first\nin-pruned\n"),
        case("fifo").files(&["x"]).fifo("pipe"),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Running a case

/// One entry of an image's filesystem under `ctx/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    path: String,
    kind: &'static str,
    mode: u32,
    link: String,
    size: u64,
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<8} {:04o} {:?}", self.kind, self.mode, self.path)?;
        if !self.link.is_empty() {
            write!(f, " -> {:?}", self.link)?;
        }
        if self.kind == "file" {
            write!(f, " ({} bytes)", self.size)?;
        }
        Ok(())
    }
}

/// Runs every case (one after the other) and fails once, listing each case that differs.
fn check(cases: Vec<Case>) {
    let total = cases.len();
    let failures: Vec<String> = cases.iter().filter_map(|c| run_case(c).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {total} cases differ from the Docker CLI or buildx:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// Images of one case, removed on drop (also when the case panics).
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = docker().args(["rmi", "-f"]).args(&self.0).output();
    }
}

/// The docker CLI on the daemon ecrship uses.
fn docker() -> Command {
    docker_cli()
}

/// The four builds of a case run at the same time (each is mostly waiting on the daemon).
fn run_case(case: &Case) -> Result<(), String> {
    let fail = |what: String| format!("case `{}`: {what}", case.name);
    let test = Test::new();
    let ctx = test.path("ctx");
    case.make(&ctx);
    let repository = unique_name("ctx");
    fs::write(
        test.path("ecrship.toml"),
        format!(
            "[[image]]\nname = \"ctx\"\nrepository = \"{repository}\"\ncontext = \"ctx\"\ndockerfile = \"{}\"\n",
            case.config_dockerfile()
        ),
    )
    .unwrap();
    let image = |tag: &str| format!("{repository}:{tag}");
    let _cleanup = Cleanup(vec![
        image("cli"),
        image("buildx"),
        image("classic"),
        image("buildkit"),
    ]);

    let (cli, buildx, classic, buildkit) = thread::scope(|s| {
        let cli = s.spawn(|| build_with_cli(case, &ctx, &image("cli")));
        let buildx = s.spawn(|| build_with_buildx(case, &ctx, &image("buildx")));
        let classic = s.spawn(|| build_with_ecrship(&test, "classic", &image("classic")));
        let buildkit = s.spawn(|| build_with_ecrship(&test, "buildkit", &image("buildkit")));
        (
            cli.join().unwrap(),
            buildx.join().unwrap(),
            classic.join().unwrap(),
            buildkit.join().unwrap(),
        )
    });

    let mut failures = Vec::new();
    for (builder, reference, got) in [
        ("classic", ("the classic CLI", cli), classic),
        ("buildkit", ("buildx", buildx), buildkit),
    ] {
        let (tool, want) = reference;
        match (want, got) {
            // A context the reference tool cannot send either: the daemon refused it (Docker
            // 28's BuildKit takes only UTF-8 file names), so ecrship's build must fail too.
            (Err(_), Err(_)) => {}
            (Err(why), _) | (_, Err(why)) => failures.push(fail(why)),
            (Ok(want), Ok(got)) if got != want => failures.push(fail(format!(
                "--builder {builder} differs from {tool}\n{}",
                diff(tool, &want, &got)
            ))),
            (Ok(_), Ok(_)) => {}
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n\n"))
    }
}

/// The classic reference: the CLI's classic build, run as a user would, from inside the context.
fn build_with_cli(case: &Case, ctx: &Path, image: &str) -> Result<Vec<Entry>, String> {
    let mut cmd = docker();
    cmd.env("DOCKER_BUILDKIT", "0");
    build_with(cmd, "docker build", case, ctx, image)
}

/// The BuildKit reference: buildx 0.13 with the `docker` driver, on the same daemon.
fn build_with_buildx(case: &Case, ctx: &Path, image: &str) -> Result<Vec<Entry>, String> {
    let mut cmd = docker_buildx_cli().expect(
        "buildx is needed to compare BuildKit builds; scripts/test fetches it (ECRSHIP_TEST_BUILDX_CONFIG)",
    );
    cmd.arg("buildx");
    build_with(cmd, "docker buildx build", case, ctx, image)
}

fn build_with(
    mut cmd: Command,
    what: &str,
    case: &Case,
    ctx: &Path,
    image: &str,
) -> Result<Vec<Entry>, String> {
    let out = cmd
        .current_dir(ctx)
        .args([
            "build",
            "--no-cache",
            "-q",
            "-f",
            &case.dockerfile,
            "-t",
            image,
            ".",
        ])
        .output()
        .expect("run the docker CLI");
    if !out.status.success() {
        return Err(format!(
            "`{what}` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(image_entries(image))
}

/// `ecrship build --builder <builder>`, tagged `<repository>:<builder>` through the tag chain's
/// `CODEBUILD_RESOLVED_SOURCE_VERSION` (the project has no `.git-commit-hash`).
fn build_with_ecrship(
    test: &Test,
    builder: &'static str,
    image: &str,
) -> Result<Vec<Entry>, String> {
    let args = ["build", "--builder", builder, "--no-cache"];
    let out = test.run_with_env(args, [("CODEBUILD_RESOLVED_SOURCE_VERSION", builder)]);
    if out.code != 0 {
        return Err(format!("ecrship build --builder {builder} failed:\n{out}"));
    }
    Ok(image_entries(image))
}

/// The entries under `ctx/` of `image`, sorted: read from `docker export` of a container that
/// is created, never started (a `FROM scratch` image has nothing to run).
fn image_entries(image: &str) -> Vec<Entry> {
    struct Container(String);
    impl Drop for Container {
        fn drop(&mut self) {
            let _ = docker().args(["rm", "-f", &self.0]).output();
        }
    }
    let out = docker().args(["create", image, "/none"]).output().unwrap();
    assert!(
        out.status.success(),
        "docker create {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let container = Container(String::from_utf8_lossy(&out.stdout).trim().to_string());
    let out = docker().args(["export", &container.0]).output().unwrap();
    assert!(
        out.status.success(),
        "docker export {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let mut entries = Vec::new();
    for entry in archive.entries().expect("read the export") {
        let entry = entry.expect("read an export entry");
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = path.strip_prefix("./").unwrap_or(&path).to_string();
        if !path.starts_with("ctx/") {
            continue;
        }
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => "file",
            tar::EntryType::Link => "hardlink",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Fifo => "fifo",
            tar::EntryType::Char => "char",
            tar::EntryType::Block => "block",
            _ => "other",
        };
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default();
        entries.push(Entry {
            path,
            kind,
            mode: header.mode().unwrap_or(0) & 0o7777,
            link,
            size: if kind == "file" { entry.size() } else { 0 },
        });
    }
    entries.sort();
    entries
}

fn list(entries: &[Entry]) -> String {
    entries.iter().map(|e| format!("    {e}\n")).collect()
}

/// What only one side has, then both lists.
fn diff(tool: &str, cli: &[Entry], ecrship: &[Entry]) -> String {
    let only = |a: &[Entry], b: &[Entry]| -> String {
        a.iter()
            .filter(|e| !b.contains(e))
            .map(|e| format!("    {e}\n"))
            .collect()
    };
    format!(
        "  only in {tool}'s image:\n{}  only in ecrship's image:\n{}  {tool} ({} entries):\n{}  ecrship ({} entries):\n{}",
        only(cli, ecrship),
        only(ecrship, cli),
        cli.len(),
        list(cli),
        ecrship.len(),
        list(ecrship)
    )
}
