//! What a run shows on stderr: the live view on a real pseudo-terminal (the screen it leaves,
//! read with a terminal emulator), and the plain lines, compared with the last release's.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;

use crate::harness::{Test, docker_api, stack, unique_name};

/// Terminal size of the runs: tall enough that nothing scrolls off.
const ROWS: u16 = 120;
const COLS: u16 = 110;

/// A run of the binary with stderr on a pseudo-terminal.
struct TerminalRun {
    code: i32,
    stdout: String,
    /// Every byte the terminal received, escape sequences included.
    raw: Vec<u8>,
    /// The screen those bytes leave, line by line, trailing blanks trimmed.
    screen: Vec<String>,
}

impl std::fmt::Display for TerminalRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "exit code {}\n--- stdout:\n{}", self.code, self.stdout)?;
        writeln!(f, "--- screen:")?;
        for line in &self.screen {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

impl TerminalRun {
    /// Index of the first screen line that starts with `prefix`; panics when there is none.
    #[track_caller]
    fn line_starting(&self, prefix: &str) -> usize {
        self.screen
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starts with {prefix:?}\n{self}"))
    }
}

/// Runs the binary with `args` in `test`'s project, its stderr on a new pseudo-terminal of
/// [`ROWS`]×[`COLS`] (stdin empty, stdout a pipe), and reads what the terminal shows.
fn run_on_terminal(test: &Test, args: &[&str]) -> TerminalRun {
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
    rustix::pty::grantpt(&master).expect("grantpt");
    rustix::pty::unlockpt(&master).expect("unlockpt");
    let name = rustix::pty::ptsname(&master, Vec::new()).expect("ptsname");
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY,
        Mode::empty(),
    )
    .expect("open the pty's terminal side");
    let size = rustix::termios::Winsize {
        ws_row: ROWS,
        ws_col: COLS,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&slave, size).expect("set the terminal size");

    let mut cmd = test.command();
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(slave));
    let mut child = cmd.spawn().expect("spawn ecrship");
    // The command holds the terminal side open; once only the child has it, reading the
    // master side ends when the child exits.
    drop(cmd);
    let mut terminal = File::from(master);
    let reader = thread::spawn(move || {
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        // Linux answers EIO once every copy of the terminal side is closed.
        while let Ok(n @ 1..) = terminal.read(&mut buf) {
            raw.extend_from_slice(&buf[..n]);
        }
        raw
    });
    let mut stdout = child.stdout.take().expect("stdout");
    let out_reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for ecrship") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ecrship did not finish within 300 s on the terminal");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let raw = reader.join().expect("terminal reader");
    let mut parser = vt100::Parser::new(ROWS, COLS, 0);
    parser.process(&raw);
    // Row by row: `contents()` would join a row that is filled to the last column with the next.
    let screen = parser
        .screen()
        .rows(0, COLS)
        .map(|l| l.trim_end().to_owned())
        .collect();
    TerminalRun {
        code: status.code().unwrap_or(-1),
        stdout: out_reader.join().expect("stdout reader"),
        raw,
        screen,
    }
}

/// Whether `raw` holds an SGR sequence (`ESC [ ... m`): colour or bold.
fn has_sgr(raw: &[u8]) -> bool {
    raw.windows(2).enumerate().any(|(i, w)| {
        w == b"\x1b[" && {
            let rest = &raw[i + 2..];
            let end = rest
                .iter()
                .position(|b| !(b.is_ascii_digit() || *b == b';'));
            end.is_some_and(|e| rest[e] == b'm')
        }
    })
}

/// `text` without its CSI escape sequences (cursor moves, line clears, colours).
fn strip_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
        } else if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// Removes the test's local images.
fn remove_images(names: &[String]) {
    for name in names {
        let _ = docker_api("DELETE", &format!("/images/{name}?force=1"));
    }
}

/// Three images built one after the other (`-j 1`, so the order of events is fixed): `first`
/// and `second` succeed, `broken` fails after printing a secret build arg.
#[test]
fn tty_view_draws_a_line_per_image_and_the_failed_image_log_below_it() {
    let base = &stack().base_image;
    let ns = unique_name("tty");
    let tag = unique_name("t");
    let secret = format!("tty-token-{tag}");
    let config = format!(
        "[[image]]\nname = \"first\"\nrepository = \"{ns}/first\"\ncontext = \"first\"\n\n\
         [[image]]\nname = \"second\"\nrepository = \"{ns}/second\"\ncontext = \"second\"\n\n\
         [[image]]\nname = \"broken\"\nrepository = \"{ns}/broken\"\ncontext = \"broken\"\n\
         [image.build_args]\nAPI_TOKEN = \"{secret}\"\n"
    );
    let test = Test::new()
        .file(".git-commit-hash", format!("{tag}\n"))
        .file("ecrship.toml", config)
        .file("first/Dockerfile", format!("FROM {base}\nRUN echo first-output\n"))
        .file("second/Dockerfile", format!("FROM {base}\nRUN echo second-output\n"))
        .file(
            "broken/Dockerfile",
            format!(
                "FROM {base}\nARG API_TOKEN\nRUN echo \"token=$API_TOKEN\" && echo broken-output && exit 3\n"
            ),
        )
        // `auto` picks the live view: stderr is a terminal, CI is unset.
        .env_remove("CI")
        .env("TERM", "xterm-256color")
        .env("NO_COLOR", "1");
    let run = run_on_terminal(&test, &["build", "--dry-run", "--no-cache", "-j", "1"]);
    remove_images(&[format!("{ns}/first:{tag}"), format!("{ns}/second:{tag}")]);
    assert_eq!(run.code, 1, "{run}");

    // One line per image, in config order, one after the other, each in its final state.
    let first = run.line_starting("first ");
    assert_eq!(run.line_starting("second "), first + 1, "{run}");
    assert_eq!(run.line_starting("broken "), first + 2, "{run}");
    let row = |i: usize| run.screen[first + i].split_whitespace().collect::<Vec<_>>();
    assert_eq!(row(0)[1], "done", "{run}");
    assert_eq!(row(1)[1], "done", "{run}");
    assert_eq!(row(2)[1], "failed", "{run}");
    // The row of a built image names it and ends with the time it took.
    assert!(
        run.screen[first].contains(&format!("built {ns}/first:{tag}")),
        "{run}"
    );
    assert!(
        row(0)
            .last()
            .is_some_and(|t| t.ends_with('s') && t.starts_with(|c: char| c.is_ascii_digit())),
        "{run}"
    );
    // The failed row's last line (the step's error) is longer than the terminal is wide: it is
    // cut, and the row still ends with its time.
    let broken = &run.screen[first + 2];
    assert!(broken.contains(" ERROR: "), "{run}");
    assert!(!broken.contains("exit code: 3"), "{run}");
    assert!(
        row(2)
            .last()
            .is_some_and(|t| t.ends_with('s') && t.starts_with(|c: char| c.is_ascii_digit())),
        "{run}"
    );
    // No row is drawn twice (a torn block).
    for name in ["first ", "second ", "broken "] {
        let count = run.screen.iter().filter(|l| l.starts_with(name)).count();
        assert_eq!(count, 1, "{name}\n{run}");
    }

    // Log events print above the block: the warning about the secret-looking build arg came
    // while the block was drawn.
    let warning = run.line_starting("warning: [broken] build arg `API_TOKEN` looks secret");
    assert!(warning < first, "{run}");

    // Below the block: the failed image's log, its step and output, the secret scrubbed; then
    // the error, once.
    let header = run.line_starting("broken: the last ");
    assert!(header > first + 2, "{run}");
    let tail = &run.screen[header + 1..];
    let step = tail
        .iter()
        .position(|l| {
            l.starts_with("[broken] #")
                && l.contains("[2/2] RUN echo")
                && l.ends_with("&& echo broken-output && exit 3")
        })
        .unwrap_or_else(|| panic!("the failed step is in the tail\n{run}"));
    assert!(
        tail[step..]
            .iter()
            .any(|l| l.starts_with("[broken] #") && l.ends_with(" token=***")),
        "{run}"
    );
    assert!(
        tail[step..].iter().any(|l| l.ends_with(" broken-output")),
        "{run}"
    );
    assert!(
        tail.iter()
            .all(|l| !l.starts_with("[first]") && !l.starts_with("[second]")),
        "{run}"
    );
    let error = run.line_starting("error: image `broken`: build failed");
    assert!(error > header, "{run}");

    // The secret is nowhere, and NO_COLOR left the block without colour.
    let raw = String::from_utf8_lossy(&run.raw);
    assert!(!raw.contains(&secret), "{run}");
    assert!(!has_sgr(&run.raw), "colour despite NO_COLOR\n{raw:?}");
}

/// A release to the registry through moto's ECR, with `--progress tty` and `--color always`:
/// the push's bytes are drawn while it runs, the artifact's log line prints above the block.
#[test]
fn tty_view_shows_the_bytes_of_a_push() {
    let s = stack();
    let base = &s.base_image;
    let ns = unique_name("ttypush");
    let tag = unique_name("t");
    // 8 MB that gzip cannot shrink, so that the push takes a few progress messages.
    let mut noise = Vec::with_capacity(8 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while noise.len() < 8 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    let test = Test::new()
        .file(".git-commit-hash", format!("{tag}\n"))
        .file(
            "ecrship.toml",
            format!(
                "[[image]]\nname = \"heavy\"\nrepository = \"{ns}/heavy\"\ncontext = \"heavy\"\n"
            ),
        )
        .file(
            "heavy/Dockerfile",
            format!("FROM {base}\nCOPY noise /noise\n"),
        )
        .file("heavy/noise", noise)
        .moto_env()
        .env("ECRSHIP_REGISTRY", &s.registry)
        .env("TERM", "xterm-256color");
    let run = run_on_terminal(
        &test,
        &["--progress", "tty", "--color", "always", "release"],
    );
    let mut images = vec![];
    for t in [tag.as_str(), "latest"] {
        images.push(format!("{ns}/heavy:{t}"));
        images.push(format!("{}/{ns}/heavy:{t}", s.registry));
    }
    remove_images(&images);
    assert_eq!(run.code, 0, "{run}");

    let raw = String::from_utf8_lossy(&run.raw);
    // A frame of the push: `pushing  <done> / <total>`, in bytes with decimal units.
    let frames = strip_escapes(&raw);
    let frame = frames.split(['\r', '\n']).find_map(|piece| {
        let at = piece.find("pushing")?;
        let words: Vec<&str> = piece[at..].split_whitespace().collect();
        (words.len() > 4 && words[2] == "/" && words[3].ends_with("MB")).then(|| piece.to_owned())
    });
    let frame = frame.unwrap_or_else(|| panic!("no frame shows the bytes pushed\n{raw:?}"));
    assert!(frame.contains("heavy"), "{frame:?}");

    // The final screen: the row done, after the pushed line; the summary on stdout, which
    // alone says what was written.
    let row = run.line_starting("heavy ");
    let words: Vec<&str> = run.screen[row].split_whitespace().collect();
    assert_eq!(words[1], "done", "{run}");
    assert!(run.stdout.starts_with("IMAGE"), "{run}");
    assert!(
        run.stdout.ends_with("wrote imagedefinitions.json\n"),
        "{run}"
    );
    assert!(
        !run.screen.iter().any(|l| l.starts_with("wrote ")),
        "`wrote` is said once, on stdout\n{run}"
    );
    // --color always: the state is coloured.
    assert!(has_sgr(&run.raw), "{raw:?}");
    assert!(!raw.contains(&s.registry_password), "{run}");
}

/// `auto` on a terminal inside CI (`CI` set) keeps CodeBuild's plain lines.
#[test]
fn auto_gives_plain_lines_on_a_terminal_in_ci() {
    let name = unique_name("ttyci");
    let tag = unique_name("t");
    let test = Test::new()
        .file(".git-commit-hash", format!("{tag}\n"))
        .file(
            "ecrship.toml",
            format!("[[image]]\nname = \"solo\"\nrepository = \"{name}\"\ncontext = \".\"\n"),
        )
        .file("Dockerfile", "FROM scratch\nCOPY Dockerfile /Dockerfile\n")
        .env("CI", "true")
        .env("TERM", "xterm-256color");
    let run = run_on_terminal(&test, &["build"]);
    remove_images(&[format!("{name}:{tag}")]);
    assert_eq!(run.code, 0, "{run}");
    let building = run.line_starting(&format!("[solo] building {name}:{tag} from Dockerfile"));
    assert!(run.line_starting("[solo] built ") > building, "{run}");
    assert!(!run.screen.iter().any(|l| l.starts_with("solo ")), "{run}");
}

// ---------------------------------------------------------------------------------------------
// Plain output, compared with the last release's.

/// The plain stderr of `build --dry-run --no-cache` on a fixed project (two images, the classic
/// builder, one at a time), with what changes from run to run masked: the test's names, image ids and
/// times.
fn plain_run(program: Option<&Path>) -> String {
    let ns = unique_name("plain");
    let tag = unique_name("t");
    let config = format!(
        "builder = \"classic\"\njobs = 1\n\n\
         [[image]]\nname = \"alpha\"\nrepository = \"{ns}/alpha\"\ncontext = \"alpha\"\n\n\
         [[image]]\nname = \"beta\"\nrepository = \"{ns}/beta\"\ncontext = \"beta\"\n"
    );
    let test = Test::new()
        .file(".git-commit-hash", format!("{tag}\n"))
        .file("ecrship.toml", config)
        .file("alpha/Dockerfile", "FROM scratch\nCOPY hello /hello\n")
        .file("alpha/hello", "alpha\n")
        .file(
            "beta/Dockerfile",
            "FROM scratch\nCOPY hello /hello\nCOPY hello /again\n",
        )
        .file("beta/hello", "beta\n")
        // A fixed `created` label, so that the LABEL steps print the same text in both runs.
        .env("SOURCE_DATE_EPOCH", "1700000000");
    let mut cmd = test.command();
    if let Some(program) = program {
        let mut other = Command::new(program);
        other.env_clear();
        for (key, value) in cmd.get_envs() {
            if let Some(value) = value {
                other.env(key, value);
            }
        }
        if let Some(dir) = cmd.get_current_dir() {
            other.current_dir(dir);
        }
        cmd = other;
    }
    cmd.args(["build", "--dry-run", "--no-cache"]);
    let out = crate::harness::run_command(cmd, None, Duration::from_secs(300));
    remove_images(&[format!("{ns}/alpha:{tag}"), format!("{ns}/beta:{tag}")]);
    assert_eq!(out.code, 0, "{out}");
    mask(&out.stderr.replace(&ns, "<ns>").replace(&tag, "<tag>"))
}

/// Hex runs of 12 or more (image ids) become `<id>`, `1.2s` becomes `<t>s`.
fn mask(text: &str) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let mut word = String::new();
        for c in line.chars() {
            if c.is_ascii_alphanumeric() || c == '.' {
                word.push(c);
                continue;
            }
            out.push_str(&mask_word(&word));
            word.clear();
            out.push(c);
        }
        out.push_str(&mask_word(&word));
    }
    out
}

fn mask_word(word: &str) -> String {
    let hex = word.len() >= 12 && word.bytes().all(|b| b.is_ascii_hexdigit());
    if hex {
        return "<id>".to_owned();
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((whole, fraction)) = word.strip_suffix('s').and_then(|s| s.split_once('.'))
        && digits(whole)
        && digits(fraction)
    {
        return "<t>s".to_owned();
    }
    word.to_owned()
}

/// Plain mode (the default off a terminal, as in CodeBuild) prints what ecrship printed before
/// the live view existed, line for line. The expected text, `fixtures/plain-classic-20.10.txt`,
/// was recorded with the binary of the last commit before the live view (b18601f; the release
/// before it printed the same, but for the two lines that reuse added: why the registry is not
/// asked, and the classic builder's `LABEL dev.ecrship.inputs` step; its last line, `wrote
/// imagedefinitions.json`, was since dropped from stderr, as the summary on stdout says it;
/// its first, the placeholder warning, says its hint once and names a placeholder that reads
/// as a registry; and the classic builder's `LABEL dev.ecrship.inputs.parts` step, the inputs
/// digest's parts, was added) on
/// Docker Engine 20.10 (the
/// machine's daemon, which the tests use), by running this very function with
/// `ECRSHIP_TEST_PLAIN_REFERENCE=<that binary>` and `ECRSHIP_TEST_PLAIN_RECORD=1`; with the first
/// variable set, the test also runs the reference binary and compares with it directly. Another
/// engine words the classic builder's lines its own way: there, only ecrship's own lines (the
/// warning, `building`, `built`, `wrote`) are compared.
#[test]
fn plain_output_is_the_last_release_output() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/plain-classic-20.10.txt");
    let now = plain_run(None);
    if let Some(reference) = std::env::var_os("ECRSHIP_TEST_PLAIN_REFERENCE") {
        let before = plain_run(Some(Path::new(&reference)));
        assert_eq!(
            now, before,
            "plain output differs from the reference binary's"
        );
        if std::env::var_os("ECRSHIP_TEST_PLAIN_RECORD").is_some() {
            std::fs::write(&fixture, &before).expect("write the fixture");
        }
    }
    let expected = std::fs::read_to_string(&fixture).expect("read the fixture");
    let version = docker_api("GET", "/version").expect("GET /version").text();
    if version.contains("\"Version\":\"20.10.") {
        assert_eq!(now, expected);
    } else {
        let own = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| {
                    let rest = l.split_once("] ").map_or(*l, |(_, r)| r);
                    l.starts_with("warning: ")
                        || l.starts_with("wrote ")
                        || rest.starts_with("building ")
                        || rest.starts_with("built ")
                })
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(own(&now), own(&expected));
    }
}

#[test]
fn masks() {
    assert_eq!(
        mask("[a] built x:y (3f2a1b0c9d8e) in 0.4s\n ---> 3f2a1b0c9d8e\nStep 1/2 : FROM scratch\n"),
        "[a] built x:y (<id>) in <t>s\n ---> <id>\nStep 1/2 : FROM scratch\n"
    );
    assert_eq!(mask("a 1.2.3s deadbeef 12s"), "a 1.2.3s deadbeef 12s");
    assert_eq!(strip_escapes("\x1b[2K\x1b[32mdone\x1b[0m 3s"), "done 3s");
}

#[test]
fn an_unknown_progress_mode_is_bad_usage() {
    let out = Test::new().args(["--progress", "fancy", "plan"]).run();
    out.assert_code(2);
    assert!(
        out.stderr
            .starts_with("error: invalid value 'fancy' for '--progress <PROGRESS>'"),
        "{out}"
    );
    let out = Test::new()
        .env("ECRSHIP_PROGRESS", "fancy")
        .args(["plan"])
        .run();
    out.assert_code(2);
    assert!(out.stderr.contains("'fancy'"), "{out}");
}
