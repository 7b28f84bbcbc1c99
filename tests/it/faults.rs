//! Bad days: each bad input or fault ends with one clear error line (what went wrong, the value,
//! where it came from), the documented exit code (1 the work failed, 2 bad input, 130/143
//! SIGINT/SIGTERM), no panic, no half-written artifact, and nothing pushed that the artifact does
//! not describe.
//!
//! Faults are injected with real processes and sockets on 127.0.0.1 (or a unix socket in a temp
//! dir): stand-ins for AWS, a registry or a Docker daemon, and a TCP proxy in front of a real
//! docker-registry. Every one of them is stopped on Drop, every loop and wait is bounded.
//!
//! Covered elsewhere and not repeated here: the config errors of `cli::config_errors_name_file_
//! line_and_value`, invalid tags from the tag file and an S3 version id (`cli::tag_*`), a failing
//! step and an unreachable daemon (`build::`), an unauthorized or stopped registry, no region and
//! `CODEBUILD_BUILD_SUCCEEDING=0` (`push::`), symlink loops and fifos in the context
//! (`context::files_on_disk_as_the_cli`), a missing SSM secret (`secrets::`).

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::harness::{
    DEFAULT_TIMEOUT, Output, Registry, Test, docker_api, registry_tags, run_command, stack,
    unique_name,
};

/// What an earlier, good run left: a fault must leave it byte for byte.
const PREVIOUS: &str = "previous\n";

// ---------------------------------------------------------------------------------------------
// Assertions.

/// The run failed with `code`, printed exactly one `error:` line holding every needle, and did
/// not panic. Returns the line.
#[track_caller]
fn assert_fails(out: &Output, code: i32, needles: &[&str], what: &str) -> String {
    assert_eq!(out.code, code, "{what}: exit code\n{out}");
    assert!(!out.stderr.contains("panicked"), "{what}: a panic\n{out}");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(lines.len(), 1, "{what}: exactly one error line\n{out}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{what}: `{needle}` is not in the error line\n{out}"
        );
    }
    assert!(out.stdout.is_empty(), "{what}: no result on stdout\n{out}");
    // A line to read: no `Debug` dump of the error's structs.
    assert!(
        !lines[0].contains("Error(") && lines[0].len() < 1000,
        "{what}: a dump\n{out}"
    );
    // Shown with `--no-capture`: the matrix as a user reads it.
    eprintln!("[{what}] exit {code}: {}", lines[0]);
    lines[0].to_owned()
}

/// `imagedefinitions.json` holds what the earlier run wrote, and no temporary file is left.
#[track_caller]
fn assert_untouched(test: &Test, what: &str) {
    assert_eq!(
        test.read("imagedefinitions.json"),
        PREVIOUS,
        "{what}: the artifact changed"
    );
    let leftovers: Vec<String> = fs::read_dir(test.root())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(".ecrship-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "{what}: temporary files left: {leftovers:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Projects.

/// One image `app`, built from the project root, in a repository unique to the test; the
/// artifact of an earlier run is in place. Local images are removed on Drop.
struct Project {
    test: Test,
    repo: String,
    tag: String,
}

impl Project {
    /// `dockerfile` may use `{base}`; `image` is appended to the `[[image]]` table.
    fn new(dockerfile: &str, image: &str) -> Project {
        Project::with_top("", dockerfile, image)
    }

    /// Like `new`, with `top` keys or tables before the `[[image]]`.
    fn with_top(top: &str, dockerfile: &str, image: &str) -> Project {
        let repo = unique_name("faults");
        let tag = unique_name("t");
        let config = format!("{top}\n[[image]]\nname = \"app\"\nrepository = \"{repo}\"\n{image}");
        let test = Test::new()
            .file(".git-commit-hash", format!("{tag}\n"))
            .file("ecrship.toml", config)
            .file(
                "Dockerfile",
                dockerfile.replace("{base}", &stack().base_image),
            )
            .file("imagedefinitions.json", PREVIOUS);
        Project { test, repo, tag }
    }

    fn env(self, key: &str, value: &str) -> Project {
        self.with(|test| test.env(key, value))
    }

    /// Changes the test (e.g. `Test::moto_env`).
    fn with(mut self, change: impl FnOnce(Test) -> Test) -> Project {
        self.test = change(std::mem::take(&mut self.test));
        self
    }

    fn file(self, rel: &str, contents: impl AsRef<[u8]>) -> Project {
        self.with(|test| test.file(rel, contents))
    }

    fn built_locally(&self) -> bool {
        let path = format!("/images/{}:{}/json", self.repo, self.tag);
        docker_api("GET", &path).expect("docker api").status == 200
    }

    /// The tags of this project's repository in a registry (user `AWS`, the stack's password).
    fn pushed_to(&self, registry: &str) -> Vec<String> {
        registry_tags(registry, &stack().registry_password, &self.repo)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        remove_local_images(&self.repo);
    }
}

/// Removes every local reference to `repo`, with or without a registry in front.
fn remove_local_images(repo: &str) {
    let Ok(list) = docker_api("GET", "/images/json") else {
        return;
    };
    let images: serde_json::Value = serde_json::from_slice(&list.body).unwrap_or_default();
    for image in images.as_array().into_iter().flatten() {
        for reference in image["RepoTags"].as_array().into_iter().flatten() {
            let reference = reference.as_str().unwrap_or_default();
            if reference.starts_with(&format!("{repo}:"))
                || reference.contains(&format!("/{repo}:"))
            {
                let _ = docker_api("DELETE", &format!("/images/{reference}?force=1"));
            }
        }
    }
}

const FROM_BASE: &str = "FROM {base}\nCOPY hello /hello\n";

/// A project that builds and pushes in a second or two.
fn small_project() -> Project {
    Project::new(FROM_BASE, "").file("hello", "hello\n")
}

/// `test.run_with(args)`, killed after `timeout` (which fails the test: a hang is a failure).
fn run_bounded(test: &Test, args: &[&str], timeout: Duration) -> Output {
    let mut cmd = test.command();
    cmd.args(args);
    run_command(cmd, None, timeout)
}

/// A free 127.0.0.1 port that nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------------
// Processes.

/// `cmd` as root without the capabilities that let root read, write and enter any file, so that
/// file modes apply to it (as root, `chmod 000` alone stops nothing).
fn without_file_capabilities(cmd: &Command) -> Command {
    let mut wrapped = Command::new("setpriv");
    wrapped
        .args([
            "--inh-caps=-all",
            "--bounding-set=-dac_override,-dac_read_search",
            "--",
        ])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env_clear();
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
}

/// Whether file modes can be made to apply here (root that may drop capabilities); prints why
/// not, for the test to skip.
fn file_modes_can_apply(test: &str) -> bool {
    let probe = Command::new("setpriv")
        .args([
            "--inh-caps=-all",
            "--bounding-set=-dac_override,-dac_read_search",
            "--",
            "true",
        ])
        .output();
    let ok = matches!(&probe, Ok(out) if out.status.success());
    if !ok {
        eprintln!("{test}: skipped: `setpriv` cannot drop CAP_DAC_OVERRIDE here ({probe:?})");
    }
    ok
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// A child process whose output is collected as it comes; killed and reaped on Drop.
struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Running {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits until stderr holds `needle`; false when the process ended or time ran out first.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return self.stderr().contains(needle);
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {}", self.child.id());
    }

    /// Waits up to `timeout` for the process to end; None when it is still running.
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// What it printed, once it has ended.
    fn output(mut self, status: ExitStatus) -> Output {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        use std::os::unix::process::ExitStatusExt;
        Output {
            code: status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

/// Processes on this machine whose command line holds `marker` (a build's `RUN` shell).
fn processes_with(marker: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline
                .windows(marker.len())
                .any(|w| w == marker.as_bytes())
        })
        .collect()
}

/// Containers (running or not) whose command holds `marker`: the classic builder's `RUN` steps.
fn containers_with(marker: &str) -> Vec<String> {
    let list = docker_api("GET", "/containers/json?all=1").expect("docker api");
    let list: serde_json::Value = serde_json::from_slice(&list.body).unwrap_or_default();
    list.as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["Command"]
                .as_str()
                .is_some_and(|cmd| cmd.contains(marker))
        })
        .map(|c| c["Id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Polls `done` every 100 ms for up to `timeout`.
fn eventually(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    done()
}

// ---------------------------------------------------------------------------------------------
// Stand-ins on loopback.

/// One scripted HTTP answer.
struct Reply {
    status: u16,
    body: String,
}

fn reply(status: u16, body: impl Into<String>) -> Reply {
    Reply {
        status,
        body: body.into(),
    }
}

/// An AWS JSON-protocol error, as ECR and SSM send them.
fn aws_error(kind: &str, message: &str) -> Reply {
    reply(
        400,
        serde_json::json!({ "__type": kind, "message": message }).to_string(),
    )
}

/// ECR's GetAuthorizationToken answer: user `AWS`, this password, this registry.
fn ecr_token(password: &str, registry: &str) -> Reply {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
    ecr_raw_token(&token, registry)
}

fn ecr_raw_token(token: &str, registry: &str) -> Reply {
    let body = serde_json::json!({ "authorizationData": [{
        "authorizationToken": token,
        "expiresAt": 4_102_444_800u64,
        "proxyEndpoint": format!("https://{registry}"),
    }]});
    reply(200, body.to_string())
}

/// An HTTP/1.1 server on 127.0.0.1 answering each request with the next scripted reply (the last
/// one repeats), one request per connection. A TLS hello gets what Go's plain-HTTP servers send,
/// so that the Docker daemon falls back to plain HTTP as with a real local registry. Stopped on
/// Drop.
struct Stub {
    addr: String,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Stub {
    fn start(script: Vec<Reply>) -> Stub {
        assert!(!script.is_empty());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (requests.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut next = 0;
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = conn else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let Some(head) = read_request(&mut stream) else {
                    let _ = stream.write_all(
                        b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
                    );
                    continue;
                };
                seen.lock().unwrap().push(head);
                let r = &script[next.min(script.len() - 1)];
                next += 1;
                let reason = match r.status {
                    200 => "OK",
                    400 => "Bad Request",
                    503 => "Service Unavailable",
                    _ => "Whatever",
                };
                let text = format!(
                    "HTTP/1.1 {} {reason}\r\nContent-Type: application/x-amz-json-1.1\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                    r.status,
                    r.body.len(),
                    r.body
                );
                let _ = stream.write_all(text.as_bytes());
                let _ = stream.shutdown(Shutdown::Write);
            }
        });
        Stub {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The head (request line and headers) of each request served so far.
    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request (head and Content-Length body); None for anything that is not HTTP.
fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if !data[0].is_ascii_uppercase() {
            return None; // e.g. a TLS hello
        }
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if data.len() > 64 * 1024 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = data.len() - head_end;
    while body < length {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        body += n;
    }
    Some(head)
}

/// A listener that accepts connections and never answers, holding them open until Drop: a daemon
/// or an endpoint that stopped answering. With `close_at_once`, it closes each connection instead.
struct Silent {
    stop: Arc<AtomicBool>,
    wake: Box<dyn Fn() + Send>,
    thread: Option<JoinHandle<()>>,
}

impl Silent {
    fn unix(path: &Path, close_at_once: bool) -> Silent {
        let listener = UnixListener::bind(path).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn
                    && !close_at_once
                {
                    held.push(conn);
                }
            }
        });
        let path = path.to_owned();
        Silent {
            stop,
            wake: Box::new(move || drop(UnixStream::connect(&path))),
            thread: Some(thread),
        }
    }

    fn tcp() -> (Silent, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                held.extend(conn.ok());
            }
        });
        let wake_addr = addr.clone();
        let silent = Silent {
            stop,
            wake: Box::new(move || drop(TcpStream::connect(&wake_addr))),
            thread: Some(thread),
        };
        (silent, addr)
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        (self.wake)();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the proxy does to the connections it carries.
#[derive(Clone, Copy)]
enum Fault {
    /// Cut the first `connections` connections whose upload passes `after` bytes.
    CutFirst { connections: usize, after: u64 },
    /// Cut every connection once its first bytes arrive, before any answer.
    CutAll,
    /// Forward uploads at this many bytes per second (until [`Proxy::unthrottle`]).
    Slow { bytes_per_second: u64 },
}

/// A TCP proxy on 127.0.0.1 in front of `upstream` that injects a [`Fault`]; stopped on Drop
/// (every connection it carries is shut down).
struct Proxy {
    addr: String,
    cuts: Arc<AtomicUsize>,
    uploaded: Arc<AtomicU64>,
    /// Bytes per second of a slow proxy; 0 is no limit.
    rate: Arc<AtomicU64>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(upstream: &str, fault: Fault) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cuts = Arc::new(AtomicUsize::new(0));
        let uploaded = Arc::new(AtomicU64::new(0));
        let rate = Arc::new(AtomicU64::new(match fault {
            Fault::Slow { bytes_per_second } => bytes_per_second,
            _ => 0,
        }));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.to_owned();
        let (cuts2, uploaded2, rate2, streams2, stop2) = (
            cuts.clone(),
            uploaded.clone(),
            rate.clone(),
            streams.clone(),
            stop.clone(),
        );
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                if let Fault::CutAll = fault {
                    let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = (&client).read(&mut [0u8; 1024]);
                    let _ = client.shutdown(Shutdown::Both);
                    cuts2.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                {
                    let mut held = streams2.lock().unwrap();
                    held.extend(client.try_clone().ok());
                    held.extend(server.try_clone().ok());
                }
                let (cuts, uploaded, rate) = (cuts2.clone(), uploaded2.clone(), rate2.clone());
                thread::spawn(move || {
                    let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) else {
                        return;
                    };
                    let up = thread::spawn(move || upload(c, s, fault, &cuts, &uploaded, &rate));
                    pump(server, client);
                    let _ = up.join();
                });
            }
        });
        Proxy {
            addr,
            cuts,
            uploaded,
            rate,
            streams,
            stop,
            thread: Some(thread),
        }
    }

    fn addr(&self) -> &str {
        &self.addr
    }

    fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from the clients to the upstream so far.
    fn uploaded(&self) -> u64 {
        self.uploaded.load(Ordering::SeqCst)
    }

    /// Lets a slow proxy forward at full speed from now on.
    fn unthrottle(&self) {
        self.rate.store(0, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let _ = TcpStream::connect(&self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Client to upstream, with the fault.
fn upload(
    mut from: TcpStream,
    mut to: TcpStream,
    fault: Fault,
    cuts: &AtomicUsize,
    total: &AtomicU64,
    rate: &AtomicU64,
) {
    let mut buf = [0u8; 4096];
    let mut sent = 0u64;
    let mut decided = false;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
        total.fetch_add(n as u64, Ordering::SeqCst);
        match fault {
            Fault::CutFirst { connections, after } if !decided && sent > after => {
                decided = true;
                let cut = cuts.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
                    (c < connections).then_some(c + 1)
                });
                if cut.is_ok() {
                    let _ = from.shutdown(Shutdown::Both);
                    let _ = to.shutdown(Shutdown::Both);
                    return;
                }
            }
            Fault::Slow { .. } => {
                // No limit (0) once unthrottled.
                if let Some(micros) =
                    (n as u64 * 1_000_000).checked_div(rate.load(Ordering::SeqCst))
                {
                    thread::sleep(Duration::from_micros(micros));
                }
            }
            _ => {}
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Upstream to client, untouched.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

/// `n` bytes that do not compress, so that a layer's upload takes its time through a slow proxy.
fn incompressible(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// =============================================================================================
// Config and command line: no daemon, no AWS.

#[test]
fn config_faults_name_the_file_the_line_and_the_value() {
    // (what, config, needles): each is bad input, exit 2, one line naming ecrship.toml.
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "syntax after non-ASCII text",
            "[[image]]\nname = \"äpp\nx = 1\n",
            &["line 2"],
        ),
        (
            "wrong type in an image",
            "[[image]]\nname = \"app\"\ncontext = 3\n",
            &["line 3", "context"],
        ),
        (
            "wrong type for a build arg",
            "[[image]]\nname = \"app\"\n[image.build_args]\nX = 3\n",
            &["line 4", "X"],
        ),
        (
            "a string where a list belongs",
            "[tag]\nextra = \"latest\"\n[[image]]\nname = \"app\"\n",
            &["line 2", "extra"],
        ),
        (
            "unknown key in a source",
            "[[image]]\nname = \"app\"\n[image.build_args]\nX = { enf = \"X\" }\n",
            &["line 4", "enf"],
        ),
        (
            "unknown table",
            "[artefacts]\nimagedefinitions = \"x.json\"\n[[image]]\nname = \"app\"\n",
            &["line 1", "artefacts"],
        ),
        (
            "a key given twice",
            "[[image]]\nname = \"app\"\nname = \"web\"\n",
            &["line 3", "name"],
        ),
        ("empty image list", "image = []\n", &["no images"]),
        (
            "a name that is no container name",
            "[[image]]\nname = \"my app\"\n",
            &["line 2", "`my app`"],
        ),
        (
            "a name that is no repository",
            "[[image]]\nname = \"App\"\n",
            &["line 2", "`App`", "set `repository`"],
        ),
        (
            "a repository with an empty component",
            "[[image]]\nname = \"app\"\nrepository = \"team//app\"\n",
            &["line 3", "`team//app`"],
        ),
        (
            "a dockerfile above the root",
            "[[image]]\nname = \"app\"\ndockerfile = \"../Dockerfile\"\n",
            &["line 3", "`../Dockerfile` leaves the project root"],
        ),
        (
            "an absolute context",
            "[[image]]\nname = \"app\"\ncontext = \"/etc\"\n",
            &["line 3", "`/etc`"],
        ),
        (
            "an artifact above the root",
            "[artifacts]\nimagedefinitions = \"../x.json\"\n[[image]]\nname = \"app\"\n",
            &["line 2", "../x.json"],
        ),
        (
            "a tag file above the root",
            "[tag]\nfile = \"../hash\"\n[[image]]\nname = \"app\"\n",
            &["[tag] file", "../hash"],
        ),
        (
            "a build arg file above the root",
            "[[image]]\nname = \"app\"\n[image.build_args]\nX = { file = \"../secret\" }\n",
            &["line 4", "../secret"],
        ),
        (
            "image_detail names no image",
            "[artifacts]\nimage_detail = \"web\"\n[[image]]\nname = \"app\"\n",
            &["line 2", "`web`"],
        ),
        (
            "an invalid fallback tag",
            "[tag]\nfallback = \"not valid\"\n[[image]]\nname = \"app\"\n",
            &["`not valid`"],
        ),
        (
            "jobs = 0",
            "jobs = 0\n[[image]]\nname = \"app\"\n",
            &["line 1", "jobs"],
        ),
        (
            "a registry with a scheme",
            "registry = \"https://r.example\"\n[[image]]\nname = \"app\"\n",
            &["line 1", "https://r.example"],
        ),
        (
            "optional on an SSM source",
            "[[image]]\nname = \"app\"\n[image.build_args]\nX = { ssm = \"/x\", optional = true }\n",
            &["line 4", "optional"],
        ),
    ];
    for (what, config, needles) in cases {
        let test = Test::new()
            .file("Dockerfile", "FROM scratch\n")
            .file("ecrship.toml", config)
            .file("imagedefinitions.json", PREVIOUS);
        let out = test.run_with(["release", "--dry-run"]);
        let line = assert_fails(&out, 2, needles, what);
        assert!(
            line.contains("ecrship.toml"),
            "{what}: names the file\n{out}"
        );
        assert_eq!(
            out.stderr.trim_end().lines().count(),
            1,
            "{what}: one line\n{out}"
        );
        assert_untouched(&test, what);
    }
}

#[test]
fn a_config_file_that_cannot_be_read_is_named() {
    let cases: &[(&str, &str, &[u8])] = &[
        ("a folder", "ci/images.toml", b""),
        (
            "not UTF-8",
            "ci/latin1.toml",
            b"[[image]]\nname = \"caf\xe9\"\n",
        ),
    ];
    for (what, path, contents) in cases {
        let mut test = Test::new()
            .file("Dockerfile", "FROM scratch\n")
            .file("imagedefinitions.json", PREVIOUS);
        test = if contents.is_empty() {
            test.dir(path)
        } else {
            test.file(path, contents)
        };
        let out = test.run_with(["-c", path, "release", "--dry-run"]);
        assert_fails(&out, 2, &[path, "cannot read the config file"], what);
        assert_untouched(&test, what);
    }
}

// =============================================================================================
// The tag.

#[test]
fn tag_sources_that_cannot_be_used() {
    const CBV: &str = "CODEBUILD_RESOLVED_SOURCE_VERSION";
    let long = "a".repeat(129);
    // (what, tag file: None = absent, env value, needles)
    type Case<'a> = (&'a str, Option<&'a [u8]>, Option<&'a str>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "a branch name",
            None,
            Some("feature/login"),
            vec![CBV, "`feature/login`", "`/` or `+`"],
        ),
        (
            "semver build metadata",
            None,
            Some("1.2.3+build.7"),
            vec![CBV, "`1.2.3+build.7`", "`/` or `+`"],
        ),
        (
            "129 characters",
            None,
            Some(long.as_str()),
            vec![CBV, long.as_str(), "longer than 128"],
        ),
        (
            "a leading dash",
            Some(&b"-abc\n"[..]),
            None,
            vec!["`.git-commit-hash`", "`-abc`", "starts with"],
        ),
        (
            "not UTF-8",
            Some(&b"ab\xffcd\n"[..]),
            Some("fromenv"),
            vec!["`.git-commit-hash`", "ab\u{fffd}cd"],
        ),
    ];
    for (what, file, env, needles) in cases {
        let mut project = small_project().with(|test| test.env_remove(CBV));
        if let Some(value) = env {
            project = project.env(CBV, value);
        }
        match file {
            Some(bytes) => project = project.file(".git-commit-hash", bytes),
            None => fs::remove_file(project.test.path(".git-commit-hash")).unwrap(),
        }
        let out = project.test.run_with(["release", "--dry-run"]);
        assert_fails(&out, 2, &needles, what);
        assert_untouched(&project.test, what);
    }
}

/// As root, a mode does not make a file unreadable; a folder, a dangling link, or a mode under
/// dropped capabilities does.
#[test]
fn a_tag_file_that_cannot_be_read_is_bad_input_and_never_skipped() {
    let project = small_project().env("CODEBUILD_RESOLVED_SOURCE_VERSION", "fromenv");
    let test = &project.test;
    fs::remove_file(test.path(".git-commit-hash")).unwrap();

    fs::create_dir(test.path(".git-commit-hash")).unwrap();
    let out = test.run_with(["release", "--dry-run"]);
    assert_fails(
        &out,
        2,
        &["cannot read tag file `.git-commit-hash`", "directory"],
        "a folder",
    );
    assert_untouched(test, "a folder");
    fs::remove_dir(test.path(".git-commit-hash")).unwrap();

    // Falling back to the next source here would tag the images `fromenv` (or `latest`).
    std::os::unix::fs::symlink("nowhere/hash", test.path(".git-commit-hash")).unwrap();
    let out = test.run_with(["release", "--dry-run"]);
    assert_fails(
        &out,
        2,
        &["cannot read tag file `.git-commit-hash`", "`nowhere/hash`"],
        "a dangling link",
    );
    assert_untouched(test, "a dangling link");
    fs::remove_file(test.path(".git-commit-hash")).unwrap();

    if !file_modes_can_apply("unreadable tag file") {
        return;
    }
    fs::write(test.path(".git-commit-hash"), "abc\n").unwrap();
    chmod(&test.path(".git-commit-hash"), 0o000);
    let mut cmd = test.command();
    cmd.args(["release", "--dry-run"]);
    let out = run_command(
        without_file_capabilities(&cmd),
        None,
        Duration::from_secs(60),
    );
    assert_fails(
        &out,
        2,
        &[
            "cannot read tag file `.git-commit-hash`",
            "ermission denied",
        ],
        "mode 000",
    );
    assert_untouched(test, "mode 000");
}

// =============================================================================================
// Build arguments and the build context (the daemon is reached first, then the input checked).

#[test]
fn build_arg_sources_that_fail_name_the_arg_and_the_source() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "a missing file",
            "X = { file = \"nope.txt\" }",
            &["image `app`", "build arg `X`", "`nope.txt`"],
        ),
        (
            "a folder",
            "X = { file = \"folder\" }",
            &["image `app`", "build arg `X`", "`folder`"],
        ),
        (
            "an unset variable",
            "X = { env = \"ECRSHIP_FAULTS_UNSET\" }",
            &[
                "image `app`",
                "build arg `X`",
                "`ECRSHIP_FAULTS_UNSET` is not set",
            ],
        ),
    ];
    for (what, arg, needles) in cases {
        let project = Project::new(FROM_BASE, &format!("[image.build_args]\n{arg}\n"))
            .file("hello", "x")
            .file("folder/x", "");
        let out = project.test.run_with(["release", "--dry-run"]);
        assert_fails(&out, 2, needles, what);
        assert_untouched(&project.test, what);
        assert!(!project.built_locally(), "{what}: nothing is built");
    }
}

#[test]
fn an_invalid_dockerignore_line_names_the_file_and_the_line() {
    // (what, context, .dockerignore, needles)
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "unclosed class",
            ".",
            "target\n# comment\n[a-\n",
            &[".dockerignore line 3", "`[a-`"],
        ),
        (
            "a bare !",
            ".",
            "*.log\n!\n",
            &[".dockerignore line 2", "`!`"],
        ),
        (
            "a lone backslash",
            ".",
            "a\\\n",
            &[".dockerignore line 1", "`a\\`"],
        ),
        (
            "a bad repeat count",
            "web",
            "x[ab]{2,1}\n",
            &[
                "web/.dockerignore line 1",
                "`x[ab]{2,1}`",
                "regular expression",
            ],
        ),
    ];
    for (what, context, ignore, needles) in cases {
        let rel = if *context == "." {
            ".dockerignore".to_owned()
        } else {
            format!("{context}/.dockerignore")
        };
        let project = Project::new(
            FROM_BASE,
            &format!("context = \"{context}\"\ndockerfile = \"Dockerfile\"\n"),
        )
        .file(&rel, ignore)
        .file(&format!("{context}/hello"), "x");
        let out = project.test.run_with(["release", "--dry-run"]);
        assert_fails(&out, 2, needles, what);
        assert!(
            out.stderr.contains("image `app`"),
            "{what}: names the image\n{out}"
        );
        assert_untouched(&project.test, what);
        assert!(!project.built_locally(), "{what}: nothing is built");
    }
}

/// Root reads everything; without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH it obeys file modes,
/// as a CodeBuild user without root would.
#[test]
fn an_unreadable_context_entry_stops_the_build_naming_it() {
    if !file_modes_can_apply("unreadable context") {
        return;
    }
    // (what, path made unreadable, is a folder, needles)
    let cases: &[(&str, &str, bool, &[&str])] = &[
        (
            "a file",
            "src/secret.key",
            false,
            &[
                "image `app`",
                "cannot read `src/secret.key`",
                "permission denied",
            ],
        ),
        (
            "a folder",
            "src/private",
            true,
            &["image `app`", "`src/private`", "permission denied"],
        ),
        (
            ".dockerignore",
            ".dockerignore",
            false,
            &[
                "image `app`",
                "cannot read `.dockerignore`",
                "permission denied",
            ],
        ),
    ];
    for (what, path, is_dir, needles) in cases {
        let project = Project::new(FROM_BASE, "")
            .file("hello", "x")
            .file(".dockerignore", "*.tmp\n")
            .file("src/secret.key", "k")
            .file("src/private/x", "y");
        chmod(&project.test.path(path), 0o000);
        let mut cmd = project.test.command();
        cmd.args(["release", "--dry-run"]);
        let out = run_command(
            without_file_capabilities(&cmd),
            None,
            Duration::from_secs(120),
        );
        assert_fails(&out, 1, needles, what);
        assert_untouched(&project.test, what);
        assert!(!project.built_locally(), "{what}: nothing is built");
        chmod(
            &project.test.path(path),
            if *is_dir { 0o755 } else { 0o644 },
        );
    }
}

// =============================================================================================
// The Docker daemon.

#[test]
fn a_base_image_that_is_not_there_fails_fast_with_the_daemons_error() {
    for builder in ["buildkit", "classic"] {
        let project =
            Project::new("FROM nothere/img:1\nCOPY hello /hello\n", "").file("hello", "x");
        let started = Instant::now();
        let out = project
            .test
            .run_with(["release", "--dry-run", "--builder", builder]);
        assert_fails(&out, 1, &["image `app`", "build failed"], builder);
        assert!(
            out.stderr.contains("nothere/img"),
            "{builder}: names the image\n{out}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{builder}: fast\n{out}"
        );
        assert_untouched(&project.test, builder);
    }
}

#[test]
fn docker_hosts_that_do_not_answer_end_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let silent_path = dir.path().join("silent.sock");
    let closing_path = dir.path().join("closing.sock");
    let _silent = Silent::unix(&silent_path, false);
    let _closing = Silent::unix(&closing_path, true);
    let not_a_socket = dir.path().join("plain-file");
    fs::write(&not_a_socket, "").unwrap();
    let port = closed_port();
    let cases = [
        (
            "accepts and never answers",
            format!("unix://{}", silent_path.display()),
            Duration::from_secs(25),
        ),
        (
            "closes every connection",
            format!("unix://{}", closing_path.display()),
            Duration::from_secs(15),
        ),
        (
            "a plain file",
            format!("unix://{}", not_a_socket.display()),
            Duration::from_secs(15),
        ),
        (
            "a closed TCP port",
            format!("tcp://127.0.0.1:{port}"),
            Duration::from_secs(15),
        ),
    ];
    for (what, host, bound) in cases {
        let project = small_project().env("DOCKER_HOST", &host);
        let started = Instant::now();
        let out = run_bounded(
            &project.test,
            &["release", "--dry-run"],
            bound + Duration::from_secs(30),
        );
        assert_fails(&out, 1, &["cannot reach the Docker daemon at", &host], what);
        assert!(
            started.elapsed() < bound,
            "{what}: took {:?}\n{out}",
            started.elapsed()
        );
        assert_untouched(&project.test, what);
    }
}

/// SIGINT/SIGTERM while a `RUN sleep 30` runs: ecrship exits by itself within 10 s with 130/143,
/// writes no artifact, and the daemon stops the step (no process, no container of it is left).
#[test]
fn a_build_interrupted_half_way_is_cancelled_on_the_daemon() {
    let cases = [
        ("classic", "TERM", 143),
        ("buildkit", "INT", 130),
        ("buildkit", "TERM", 143),
        ("classic", "INT", 130),
    ];
    for (builder, signal, code) in cases {
        let what = format!("{builder}, SIG{signal}");
        let marker = unique_name("sleeper");
        let dockerfile = format!(
            "FROM {{base}}\nRUN echo started-$((40+2))-{marker} && sleep 30 && echo finished-{marker}\n"
        );
        let project = Project::new(&dockerfile, "");
        let mut cmd = project.test.command();
        cmd.args(["release", "--dry-run", "--no-cache", "--builder", builder]);
        let mut run = Running::start(cmd);
        let started = format!("started-42-{marker}");
        assert!(
            run.wait_for(&started, Duration::from_secs(120)),
            "{what}: the step never started\n{}",
            run.stderr()
        );
        let watched = !processes_with(&marker).is_empty();
        if !watched {
            eprintln!(
                "{what}: the RUN process is not visible from here (another PID namespace); checking containers only"
            );
        }
        let signalled = Instant::now();
        run.signal(signal);
        let status = run.wait(Duration::from_secs(10));
        let elapsed = signalled.elapsed();
        let Some(status) = status else {
            panic!(
                "{what}: still running 10 s after SIG{signal}\n{}",
                run.stderr()
            );
        };
        assert_eq!(
            status.code(),
            Some(code),
            "{what}: exits by itself with {code} ({status:?})\n{}",
            run.stderr()
        );
        let out = run.output(status);
        assert_fails(
            &out,
            code,
            &[
                &format!("interrupted by SIG{signal}"),
                "no artifact was written",
            ],
            &what,
        );
        assert!(
            elapsed < Duration::from_secs(10),
            "{what}: took {elapsed:?}"
        );
        assert_untouched(&project.test, &what);
        if watched {
            let gone = eventually(Duration::from_secs(15), || {
                processes_with(&marker).is_empty()
            });
            assert!(
                gone,
                "{what}: the RUN step still runs on the daemon: {:?}",
                processes_with(&marker)
            );
        }
        let gone = eventually(Duration::from_secs(15), || {
            containers_with(&marker).is_empty()
        });
        assert!(
            gone,
            "{what}: a container of the build is left: {:?}",
            containers_with(&marker)
        );
        assert!(!project.built_locally(), "{what}: no image is tagged");
    }
}

// =============================================================================================
// AWS: ECR login and SSM, against moto or a stand-in that answers what moto cannot.

/// A project built here, ready to push to the stack's registry with AWS at `endpoint`.
fn pushable(endpoint: &str) -> Project {
    let project = small_project()
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("ECRSHIP_REGISTRY", &stack().registry);
    // The build asks the stack's moto for its reuse check, so that `endpoint` answers only the
    // push's calls.
    let mut build = project.test.command();
    build
        .arg("build")
        .env("AWS_ENDPOINT_URL", &stack().aws_endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    run_command(build, None, DEFAULT_TIMEOUT).assert_success();
    project
}

#[test]
fn no_aws_credentials_is_named_and_nothing_is_pushed() {
    let s = stack();
    let project = pushable(&s.aws_endpoint).with(|test| {
        test.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
    });
    let started = Instant::now();
    let out = run_bounded(&project.test, &["push"], Duration::from_secs(90));
    assert_fails(
        &out,
        1,
        &[
            "ECR GetAuthorizationToken failed",
            "no AWS credentials found",
        ],
        "no credentials",
    );
    assert!(started.elapsed() < Duration::from_secs(30), "{out}");
    assert_untouched(&project.test, "no credentials");
    assert!(project.pushed_to(&s.registry).is_empty());
}

#[test]
fn an_aws_endpoint_that_is_closed_or_silent_fails_in_bounded_time() {
    let s = stack();
    let (_silent, silent_addr) = Silent::tcp();
    // The SDK's own bounds: 5 s to connect, 20 s an attempt, 60 s the whole call.
    let cases = [
        (
            "closed port",
            format!("http://127.0.0.1:{}", closed_port()),
            Duration::from_secs(30),
        ),
        (
            "never answers",
            format!("http://{silent_addr}"),
            Duration::from_secs(75),
        ),
    ];
    for (what, endpoint, bound) in cases {
        let project = pushable(&endpoint);
        let started = Instant::now();
        let out = run_bounded(&project.test, &["push"], bound + Duration::from_secs(60));
        assert_fails(&out, 1, &["ECR GetAuthorizationToken failed"], what);
        assert!(
            started.elapsed() < bound,
            "{what}: took {:?}\n{out}",
            started.elapsed()
        );
        assert_untouched(&project.test, what);
        assert!(project.pushed_to(&s.registry).is_empty(), "{what}");
    }
}

#[test]
fn ecr_throttling_is_retried_then_the_push_goes_on() {
    let s = stack();
    let stub = Stub::start(vec![
        aws_error("ThrottlingException", "Rate exceeded"),
        aws_error("ThrottlingException", "Rate exceeded"),
        ecr_token(&s.registry_password, &s.registry),
    ]);
    let project = pushable(&stub.url());
    let out = run_bounded(&project.test, &["push"], Duration::from_secs(120));
    out.assert_success();
    let calls = stub.requests();
    assert_eq!(
        calls.len(),
        3,
        "two throttled calls, then the token: {calls:#?}\n{out}"
    );
    assert!(
        calls.iter().all(|c| c.contains("GetAuthorizationToken")),
        "{calls:#?}"
    );
    let mut want = vec![project.tag.clone(), "latest".to_owned()];
    want.sort();
    assert_eq!(project.pushed_to(&s.registry), want);
    assert!(
        project
            .test
            .read("imagedefinitions.json")
            .contains(&format!("{}/{}:{}", s.registry, project.repo, project.tag))
    );
}

#[test]
fn ecr_answers_that_refuse_are_not_retried_and_name_the_call() {
    let s = stack();
    let denied = "User: arn:aws:sts::123456789012:assumed-role/build/x is not authorized to perform: ecr:GetAuthorizationToken";
    // (what, answer, needles)
    let cases: Vec<(&str, Reply, Vec<&str>)> = vec![
        (
            "access denied",
            aws_error("AccessDeniedException", denied),
            vec![
                "ECR GetAuthorizationToken failed",
                "ecr:GetAuthorizationToken",
                "ecrship policy",
            ],
        ),
        (
            "a token that is not base64",
            ecr_raw_token("!!not base64!!", &s.registry),
            vec![
                "ECR GetAuthorizationToken",
                "not a usable token",
                "not base64",
            ],
        ),
        (
            "a token without a password",
            ecr_raw_token(
                &base64::engine::general_purpose::STANDARD.encode("AWS"),
                &s.registry,
            ),
            vec!["not a usable token", "user:password"],
        ),
    ];
    for (what, answer, needles) in cases {
        let stub = Stub::start(vec![answer]);
        let project = pushable(&stub.url());
        let out = run_bounded(&project.test, &["push"], Duration::from_secs(90));
        assert_fails(&out, 1, &needles, what);
        assert_eq!(stub.requests().len(), 1, "{what}: asked once\n{out}");
        assert_untouched(&project.test, what);
        assert!(project.pushed_to(&s.registry).is_empty(), "{what}");
    }
}

#[test]
fn ssm_parameters_that_cannot_be_had_stop_the_run_before_any_build() {
    let s = stack();
    let denied = Stub::start(vec![aws_error(
        "AccessDeniedException",
        "not authorized to perform: ssm:GetParameter",
    )]);
    let parameter = format!("/ecrship/{}/nope", unique_name("p"));
    // (what, SSM endpoint, needles)
    let cases = [
        (
            "a parameter that does not exist (moto)",
            s.aws_endpoint.clone(),
            vec!["SSM GetParameter", parameter.as_str(), "does not exist"],
        ),
        (
            "access denied",
            denied.url(),
            vec!["SSM GetParameter", parameter.as_str(), "ssm:GetParameter"],
        ),
    ];
    for (what, ssm, needles) in cases {
        let project = Project::new(
            FROM_BASE,
            &format!("[image.build_args]\nX = {{ ssm = \"{parameter}\" }}\n"),
        )
        .file("hello", "x")
        .env("AWS_ENDPOINT_URL", &s.aws_endpoint)
        .env("AWS_ENDPOINT_URL_SSM", &ssm)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("ECRSHIP_REGISTRY", &s.registry);
        let out = run_bounded(&project.test, &["release"], Duration::from_secs(120));
        // The image, the arg and its line in the config: the first line is empty, the arg's
        // table starts on the fifth.
        let mut needles = needles;
        needles.extend(["image `app`", "build arg `X` (ecrship.toml line 6)"]);
        assert_fails(&out, 1, &needles, what);
        assert_untouched(&project.test, what);
        assert!(!project.built_locally(), "{what}: nothing is built");
        assert!(project.pushed_to(&s.registry).is_empty(), "{what}");
    }
}

/// moto has no pull-through cache rules, so ECR is a stand-in here: its token, then its
/// `DescribePullThroughCacheRules` answer.
#[test]
fn a_pull_through_mirror_without_its_rule_stops_the_run_before_any_build() {
    let s = stack();
    let rules = |rules: serde_json::Value| {
        reply(
            200,
            serde_json::json!({ "pullThroughCacheRules": rules }).to_string(),
        )
    };
    // (what, the rules, needles)
    let cases = [
        (
            "no rule",
            rules(serde_json::json!([])),
            vec![
                "[mirror] `docker.io`",
                "pull-through cache prefix `docker-hub`",
                "there is no such rule",
                "aws secretsmanager create-secret --name ecr-pullthroughcache/docker-hub",
                "aws ecr create-pull-through-cache-rule --ecr-repository-prefix docker-hub --upstream-registry-url registry-1.docker.io --credential-arn",
            ],
        ),
        (
            "a rule for another upstream",
            rules(serde_json::json!([{
                "ecrRepositoryPrefix": "docker-hub",
                "upstreamRegistryUrl": "public.ecr.aws",
                "registryId": "123456789012",
            }])),
            vec!["its rule copies public.ecr.aws, not registry-1.docker.io"],
        ),
    ];
    for (what, answer, needles) in cases {
        let stub = Stub::start(vec![ecr_token(&s.registry_password, &s.registry), answer]);
        let project = Project::with_top(
            "[mirror]\n\"docker.io\" = { pull_through = \"docker-hub\" }\n",
            FROM_BASE,
            "",
        )
        .file("hello", "hello\n")
        .env("AWS_ENDPOINT_URL", &stub.url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1");
        let out = run_bounded(&project.test, &["release"], Duration::from_secs(120));
        assert_fails(&out, 1, &needles, what);
        let calls = stub.requests();
        assert!(
            calls
                .iter()
                .any(|c| c.contains("DescribePullThroughCacheRules")),
            "{what}: {calls:#?}"
        );
        assert_untouched(&project.test, what);
        assert!(!project.built_locally(), "{what}: nothing is built");
        assert!(project.pushed_to(&s.registry).is_empty(), "{what}");
    }
}

/// A role that may not read the rules is warned, and the run goes on: the base only the daemon
/// holds is taken from the daemon, as without a mirror.
#[test]
fn a_role_that_may_not_read_the_pull_through_rules_is_warned_and_goes_on() {
    let s = stack();
    let stub = Stub::start(vec![
        ecr_token(&s.registry_password, &s.registry),
        aws_error(
            "AccessDeniedException",
            "not authorized to perform: ecr:DescribePullThroughCacheRules",
        ),
    ]);
    let project = Project::with_top(
        "[mirror]\n\"docker.io\" = { pull_through = \"docker-hub\" }\n",
        FROM_BASE,
        "",
    )
    .file("hello", "hello\n")
    .env("AWS_ENDPOINT_URL", &stub.url())
    .env("AWS_ACCESS_KEY_ID", "testing")
    .env("AWS_SECRET_ACCESS_KEY", "testing")
    .env("AWS_REGION", "us-east-1");
    let out = run_bounded(&project.test, &["release"], Duration::from_secs(180));
    out.assert_success();
    assert!(
        out.stderr
            .contains("cannot check the pull-through cache rules of [mirror]")
            && out.stderr.contains("ecr:DescribePullThroughCacheRules"),
        "{out}"
    );
    let mut want = vec![project.tag.clone(), "latest".to_owned()];
    want.sort();
    assert_eq!(project.pushed_to(&s.registry), want, "{out}");
}

// =============================================================================================
// The registry: a proxy in front of a real docker-registry, or a stand-in.

/// A project built here, pushing to `registry` with moto's ECR token (the stack's password).
fn pushable_to(registry: &str) -> Project {
    let project = small_project()
        .env("ECRSHIP_REGISTRY", registry)
        .with(Test::moto_env);
    project.test.run_with(["build"]).assert_success();
    project
}

#[test]
fn a_connection_dropped_mid_push_is_retried_and_the_push_completes() {
    let registry = Registry::start(&stack().registry_password);
    let proxy = Proxy::start(
        registry.addr(),
        Fault::CutFirst {
            connections: 2,
            after: 32 * 1024,
        },
    );
    let project = pushable_to(proxy.addr());
    let out = run_bounded(&project.test, &["push"], Duration::from_secs(240));
    out.assert_success();
    assert_eq!(proxy.cuts(), 2, "two uploads were cut\n{out}");
    let retried = out.stderr.contains("Retrying in") || out.stderr.contains("retrying");
    assert!(retried, "the cut uploads were retried\n{out}");
    // Each retry of ours is said once, in the image's log, and not again as a warning.
    let ours = out
        .stderr
        .lines()
        .filter(|l| l.contains("retrying in"))
        .count();
    let warned = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:") && l.contains("push"))
        .count();
    assert_eq!(warned, 0, "no second line per retry\n{out}");
    assert!(ours <= 3, "at most three retries of ours\n{out}");
    let mut want = vec![project.tag.clone(), "latest".to_owned()];
    want.sort();
    assert_eq!(registry.tags(&project.repo), want);
    let uri = format!("{}/{}:{}", proxy.addr(), project.repo, project.tag);
    assert!(
        project.test.read("imagedefinitions.json").contains(&uri),
        "{out}"
    );
}

#[test]
fn a_registry_that_always_fails_is_named_after_bounded_retries() {
    let registry = Registry::start(&stack().registry_password);
    let cutting = Proxy::start(registry.addr(), Fault::CutAll);
    let addr = cutting.addr();
    let project = pushable_to(addr);
    let started = Instant::now();
    let out = run_bounded(&project.test, &["push"], Duration::from_secs(180));
    let image = format!(
        "push of {addr}/{}:{} to {addr} failed (4 attempts)",
        project.repo, project.tag
    );
    assert_fails(&out, 1, &["image `app`", &image], "cuts every connection");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert!(cutting.cuts() >= 4, "each attempt reached the proxy");
    assert_untouched(&project.test, "cuts every connection");
    assert!(registry.tags(&project.repo).is_empty());
}

/// SIGINT/SIGTERM while a layer uploads: ecrship exits by itself within 10 s, writes no artifact,
/// and the daemon gives the push up: once the proxy lets everything through at full speed, the
/// registry still gets no tag of the image.
#[test]
fn a_push_interrupted_half_way_stops_and_tags_nothing() {
    let registry = Registry::start(&stack().registry_password);
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let what = format!("SIG{signal}");
        let slow = Fault::Slow {
            bytes_per_second: 128 * 1024,
        };
        let proxy = Proxy::start(registry.addr(), slow);
        let project = Project::new("FROM {base}\nCOPY big.bin /big.bin\n", "")
            .file("big.bin", incompressible(4 << 20))
            .env("ECRSHIP_REGISTRY", proxy.addr())
            .with(Test::moto_env);
        project.test.run_with(["build"]).assert_success();
        let before = proxy.uploaded();
        let mut cmd = project.test.command();
        cmd.arg("push");
        let mut run = Running::start(cmd);
        assert!(
            run.wait_for("pushing ", Duration::from_secs(60)),
            "{what}: the push never started\n{}",
            run.stderr()
        );
        let uploading = eventually(Duration::from_secs(30), || {
            proxy.uploaded() > before + 256 * 1024
        });
        assert!(
            uploading,
            "{what}: no upload through the proxy\n{}",
            run.stderr()
        );
        let signalled = Instant::now();
        run.signal(signal);
        let Some(status) = run.wait(Duration::from_secs(10)) else {
            panic!(
                "{what}: still running 10 s after the signal\n{}",
                run.stderr()
            );
        };
        assert_eq!(
            status.code(),
            Some(code),
            "{what}: exits by itself\n{}",
            run.stderr()
        );
        assert!(signalled.elapsed() < Duration::from_secs(10));
        let out = run.output(status);
        assert_fails(&out, code, &[&format!("interrupted by {what}")], &what);
        assert_untouched(&project.test, &what);
        // Had the daemon gone on with the push, it would now finish within seconds.
        proxy.unthrottle();
        let tagged = eventually(Duration::from_secs(15), || {
            !registry.tags(&project.repo).is_empty()
        });
        assert!(
            !tagged,
            "{what}: the daemon went on pushing: {:?}",
            registry.tags(&project.repo)
        );
    }
}

// =============================================================================================
// The artifact: checked before anything is built or pushed.

#[test]
fn an_artifact_that_cannot_be_written_fails_before_anything_is_pushed() {
    let s = stack();
    // (what, [artifacts] imagedefinitions, prepare, needles)
    type Case<'a> = (&'a str, &'a str, fn(&Path), &'a [&'a str]);
    let cases: &[Case] = &[
        (
            "the folder is missing",
            "out/imagedefinitions.json",
            |_| {},
            &["cannot write", "out/imagedefinitions.json"],
        ),
        (
            "the path is a folder",
            "out/imagedefinitions.json",
            |root| fs::create_dir_all(root.join("out/imagedefinitions.json")).unwrap(),
            &[
                "cannot write",
                "out/imagedefinitions.json",
                "it is a folder",
            ],
        ),
        (
            "a file where the folder belongs",
            "out/imagedefinitions.json",
            |root| fs::write(root.join("out"), "").unwrap(),
            &["cannot write", "out/imagedefinitions.json"],
        ),
    ];
    for (what, path, prepare, needles) in cases {
        let project = Project::with_top(
            &format!("[artifacts]\nimagedefinitions = \"{path}\"\n"),
            FROM_BASE,
            "",
        )
        .file("hello", "x")
        .env("ECRSHIP_REGISTRY", &s.registry)
        .with(Test::moto_env);
        prepare(project.test.root());
        // A dry run fails before it builds.
        let out = project.test.run_with(["release", "--dry-run"]);
        assert_fails(&out, 1, needles, what);
        assert!(!project.built_locally(), "{what}: nothing is built");
        // A push fails before it pushes.
        project.test.run_with(["build"]).assert_success();
        let out = project.test.run_with(["push"]);
        assert_fails(&out, 1, needles, what);
        assert!(
            project.pushed_to(&s.registry).is_empty(),
            "{what}: nothing is pushed"
        );
        assert_untouched(&project.test, what);
    }

    if !file_modes_can_apply("read-only artifact folder") {
        return;
    }
    let what = "a read-only folder";
    let project = Project::with_top(
        "[artifacts]\nimagedefinitions = \"out/imagedefinitions.json\"\n",
        FROM_BASE,
        "",
    )
    .file("hello", "x")
    .file("out/imagedefinitions.json", PREVIOUS)
    .env("ECRSHIP_REGISTRY", &s.registry)
    .with(Test::moto_env);
    project.test.run_with(["build"]).assert_success();
    chmod(&project.test.path("out"), 0o555);
    let mut cmd = project.test.command();
    cmd.arg("push");
    let out = run_command(
        without_file_capabilities(&cmd),
        None,
        Duration::from_secs(120),
    );
    assert_fails(
        &out,
        1,
        &[
            "cannot write",
            "out/imagedefinitions.json",
            "is not writable",
        ],
        what,
    );
    assert!(
        project.pushed_to(&s.registry).is_empty(),
        "{what}: nothing is pushed"
    );
    assert_eq!(
        project.test.read("out/imagedefinitions.json"),
        PREVIOUS,
        "{what}"
    );
    chmod(&project.test.path("out"), 0o755);
}

// =============================================================================================
// What `push` pushes, and when the artifact is safe.

/// `build`, then something else under the local `<repo>:<tag>`: `push` stops before it pushes,
/// naming the tag, the id `build` recorded and the one there now. A record that cannot be read
/// is an error too; with no record at all, only an image ecrship built is pushed.
#[test]
fn push_pushes_only_what_build_recorded() {
    let s = stack();
    let project = pushable_to(&s.registry);
    let local = format!("{}:{}", project.repo, project.tag);
    let id_of = |reference: &str| -> String {
        let r = docker_api("GET", &format!("/images/{reference}/json")).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        json["Id"]
            .as_str()
            .unwrap_or_else(|| panic!("no {reference}"))
            .to_owned()
    };
    let built = id_of(&local);
    let other = id_of(&s.base_image);
    let retag = |source: &str| {
        let (repo, tag) = local.rsplit_once(':').unwrap();
        let path = format!("/images/{source}/tag?repo={repo}&tag={tag}");
        assert_eq!(docker_api("POST", &path).unwrap().status, 201);
    };

    let what = "another image under the local tag";
    retag(&s.base_image);
    let out = project.test.run_with(["push"]);
    assert_fails(
        &out,
        1,
        &[
            "image `app`",
            &local,
            &other,
            &built,
            "run `ecrship build` again",
        ],
        what,
    );
    assert!(
        project.pushed_to(&s.registry).is_empty(),
        "{what}: nothing is pushed"
    );
    assert_untouched(&project.test, what);
    let out = project.test.run_with(["push", "--dry-run"]);
    assert_fails(&out, 1, &[&local, &other, &built], "the same, in a dry-run");

    let record = project.test.path(".ecrship/build.json");
    let kept = fs::read(&record).unwrap();
    retag(&built);
    let cases: [(&str, &dyn Fn(), &str); 3] = [
        (
            "a record that is not UTF-8",
            &|| fs::write(&record, b"\xff{").unwrap(),
            "it is not UTF-8",
        ),
        (
            "a record that is not JSON",
            &|| fs::write(&record, "{\"tag\":").unwrap(),
            "EOF",
        ),
        (
            "a record that is a folder",
            &|| {
                fs::remove_file(&record).unwrap();
                fs::create_dir(&record).unwrap();
            },
            "it is a folder",
        ),
    ];
    for (what, spoil, why) in cases {
        spoil();
        let out = project.test.run_with(["push"]);
        assert_fails(&out, 1, &[".ecrship/build.json cannot be used", why], what);
        assert!(
            project.pushed_to(&s.registry).is_empty(),
            "{what}: nothing is pushed"
        );
        assert_untouched(&project.test, what);
    }
    fs::remove_dir(&record).unwrap();

    // No record: the base image (no inputs label) is refused, ecrship's own image is pushed.
    let what = "no record and a foreign image";
    retag(&s.base_image);
    let out = project.test.run_with(["push"]);
    assert_fails(
        &out,
        1,
        &[&local, "was not built by ecrship", "has not run here"],
        what,
    );
    assert!(
        project.pushed_to(&s.registry).is_empty(),
        "{what}: nothing is pushed"
    );
    retag(&built);
    let out = project.test.run_with(["push"]);
    out.assert_success();
    assert!(
        out.stderr.contains("has not run here") && out.stderr.contains("which ecrship built"),
        "{out}"
    );
    let mut want = vec![project.tag.clone(), "latest".to_owned()];
    want.sort();
    assert_eq!(project.pushed_to(&s.registry), want);
    fs::write(&record, kept).unwrap();
}

/// A tmpfs mounted on a folder of the test (as root), unmounted on Drop.
struct Tmpfs {
    path: std::path::PathBuf,
}

impl Tmpfs {
    /// Mounts `size` bytes on `path`; None (the test says why and skips) where mounting is not
    /// allowed.
    fn mount(path: &Path, size: usize) -> Option<Tmpfs> {
        fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("run mount");
        if !out.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs {
            path: path.to_owned(),
        })
    }

    /// Fills it up: the next write fails with ENOSPC.
    fn fill(&self) {
        let mut file = fs::File::create(self.path.join("filler")).unwrap();
        let block = [0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// The artifact's folder is full: the release fails with ENOSPC, the old artifact is intact,
/// and no tag that anything deploys from moved (the registry has the commit tag, not `latest`).
#[test]
fn a_full_disk_at_the_artifact_moves_no_deploy_tag() {
    let s = stack();
    let project = Project::with_top(
        "[artifacts]\nimagedefinitions = \"out/imagedefinitions.json\"\n",
        FROM_BASE,
        "",
    )
    .file("hello", "x")
    .env("ECRSHIP_REGISTRY", &s.registry)
    .with(Test::moto_env);
    let Some(disk) = Tmpfs::mount(&project.test.path("out"), 64 * 1024) else {
        return;
    };
    fs::write(project.test.path("out/imagedefinitions.json"), PREVIOUS).unwrap();
    disk.fill();
    let out = project.test.run_with(["release"]);
    let what = "a full disk";
    assert_fails(
        &out,
        1,
        &[
            "cannot write",
            "out/imagedefinitions.json",
            "No space left on device",
        ],
        what,
    );
    assert_eq!(
        project.pushed_to(&s.registry),
        std::slice::from_ref(&project.tag),
        "{what}: only the commit tag\n{out}"
    );
    assert_eq!(
        project.test.read("out/imagedefinitions.json"),
        PREVIOUS,
        "{what}"
    );
    let leftovers: Vec<String> = fs::read_dir(project.test.path("out"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(".ecrship-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "{what}: temporary files left: {leftovers:?}"
    );

    // With room again, the same release moves `latest` and writes the artifact.
    fs::remove_file(project.test.path("out/filler")).unwrap();
    project.test.run_with(["release"]).assert_success();
    let mut want = vec![project.tag.clone(), "latest".to_owned()];
    want.sort();
    assert_eq!(project.pushed_to(&s.registry), want);
    assert!(
        project
            .test
            .read("out/imagedefinitions.json")
            .contains(&project.tag)
    );
    drop(disk);
}

/// An ignore file larger than any build session takes is bad input that names the file and
/// its size, before anything is built.
#[test]
fn an_ignore_file_too_large_for_a_session_names_its_size() {
    let mut text = String::with_capacity(24 << 20);
    for n in 0..300_000 {
        text.push_str(&format!("generated/assets/part-{n:07}/bundle.js\n"));
    }
    let project = small_project().file(".dockerignore", &text);
    let out = project.test.run_with(["build"]);
    assert_fails(
        &out,
        2,
        &[
            "image `app`",
            "`.dockerignore` is too large",
            "300000 patterns",
            "--builder classic",
        ],
        "a 300,000-line .dockerignore",
    );
    assert!(!project.built_locally());
}

/// A registry that accepts connections and never answers: the reuse check says what it waits
/// for, looks the tag and `latest` up at once, and gives up within the documented bound
/// (four attempts of 15 s and the delays between them: 63.5 s), naming the registry.
#[test]
fn a_registry_that_never_answers_is_said_and_given_up_in_bounded_time() {
    let (silent, addr) = Silent::tcp();
    let project = small_project()
        .env("ECRSHIP_REGISTRY", &addr)
        .with(Test::moto_env);
    let started = Instant::now();
    let out = run_bounded(&project.test, &["release"], Duration::from_secs(150));
    let took = started.elapsed();
    let what = "a registry that never answers";
    assert_fails(
        &out,
        1,
        &[
            "image `app`",
            &format!("registry {addr}"),
            "(4 attempts)",
            "no answer within 15s",
        ],
        what,
    );
    for tag in [project.tag.as_str(), "latest"] {
        let waiting = format!(
            "waiting for registry {addr}: GET manifest of {}:{tag} (attempt 1 of 4, no answer after 5s)",
            project.repo
        );
        assert!(
            out.stderr.contains(&waiting),
            "{what}: `{waiting}` is said\n{out}"
        );
    }
    let retries = out
        .stderr
        .lines()
        .filter(|l| l.contains("retrying in"))
        .count();
    assert_eq!(
        retries, 6,
        "{what}: one line per retry, three for each tag\n{out}"
    );
    assert!(
        took >= Duration::from_secs(60) && took < Duration::from_secs(90),
        "{what}: gave up after {took:?}, not within the bound of 63.5 s (the lookups ran at once)"
    );
    assert!(!project.built_locally(), "{what}: nothing is built");
    assert_untouched(&project.test, what);
    drop(silent);
}
