//! Test harness: run the `ecrship` binary in a fresh temp dir with a clean environment, and reach
//! the local test stack (Docker daemon, docker-registry, moto) that `scripts/test` starts.
//!
//! ```ignore
//! let test = Test::new()
//!     .file("dockerfiles/app/Dockerfile", "FROM scratch\n")
//!     .env("AWS_REGION", "ap-northeast-1")
//!     .args(["plan", "--output", "json"]);
//! let out = test.run();
//! out.assert_code(0);
//! let defs = test.read("imagedefinitions.json");
//! ```
#![allow(dead_code)] // every test module uses a different part of it

use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{env, fs, thread};

use base64::Engine as _;
use tempfile::TempDir;

/// Inherited variables whose names start with one of these never reach the binary.
const CLEARED_PREFIXES: &[&str] = &["ECRSHIP_", "AWS_", "CODEBUILD_", "DOCKER_"];
/// Inherited variables that are cleared too, so that a developer's shell cannot change the output.
const CLEARED: &[&str] = &["RUST_LOG", "NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE"];
/// `run()` kills the binary after this long and panics.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------------
// Test: one run (or several) of the binary in a temp dir.

pub struct Test {
    dir: TempDir,
    cwd: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

/// What a run printed and how it ended. `code` is 128 + N when killed by signal N.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Test {
    /// A fresh temp dir; the binary gets the inherited environment minus `ECRSHIP_*`, `AWS_*`,
    /// `CODEBUILD_*`, `DOCKER_*` (and `RUST_LOG`, colour variables), plus AWS settings that keep
    /// it off the developer's `~/.aws` and the EC2 metadata endpoint, and `DOCKER_HOST` set to
    /// the daemon under test (`docker_host`).
    pub fn new() -> Test {
        let dir = tempfile::Builder::new()
            .prefix("ecrship-it.")
            .tempdir()
            .expect("create the test's temp dir");
        let aws_config = dir.path().join(".aws-none/config");
        let aws_credentials = dir.path().join(".aws-none/credentials");
        Test {
            dir,
            cwd: PathBuf::new(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            timeout: DEFAULT_TIMEOUT,
        }
        .env("AWS_CONFIG_FILE", aws_config)
        .env("AWS_SHARED_CREDENTIALS_FILE", aws_credentials)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("DOCKER_HOST", docker_host())
    }

    /// Write a file under the temp dir, creating its parent directories.
    pub fn file(self, rel: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Test {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        self
    }

    /// Create a directory (and its parents) under the temp dir.
    pub fn dir(self, rel: impl AsRef<Path>) -> Test {
        let path = self.path(rel);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        self
    }

    /// Append one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Test {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Append arguments.
    pub fn args<I, S>(mut self, args: I) -> Test
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Set a variable for the binary (overrides the harness's defaults).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Test {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Remove a variable (inherited, a harness default, or set earlier).
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Test {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// "AWS via moto": the stack's moto server, dummy credentials, region us-east-1.
    pub fn moto_env(self) -> Test {
        let endpoint = &stack().aws_endpoint;
        self.moto_env_at(endpoint)
    }

    /// Like `moto_env`, with another moto (e.g. one from `Moto::start`).
    pub fn moto_env_at(self, endpoint: &str) -> Test {
        self.env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
    }

    /// Run in this directory, relative to the temp dir (default: the temp dir itself).
    pub fn current_dir(mut self, rel: impl AsRef<Path>) -> Test {
        self.cwd = rel.as_ref().to_owned();
        self
    }

    /// Feed these bytes on stdin (default: empty stdin).
    pub fn stdin(mut self, input: impl AsRef<[u8]>) -> Test {
        self.stdin = Some(input.as_ref().to_owned());
        self
    }

    /// Kill the binary after this long (default 300 s).
    pub fn timeout(mut self, timeout: Duration) -> Test {
        self.timeout = timeout;
        self
    }

    /// The temp dir.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path under the temp dir.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A file under the temp dir, as UTF-8; panics with the path when unreadable.
    pub fn read(&self, rel: impl AsRef<Path>) -> String {
        let path = self.path(rel);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Run the binary with the arguments given by `arg`/`args`.
    pub fn run(&self) -> Output {
        self.run_with(&self.args)
    }

    /// Run the binary with these arguments instead (same dir and env): for a second command,
    /// e.g. `build` then `push`, in the same project.
    pub fn run_with<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command();
        cmd.args(args);
        run_command(cmd, self.stdin.as_deref(), self.timeout)
    }

    /// Like `run_with`, with extra environment variables for this one run.
    pub fn run_with_env<I, S>(
        &self,
        args: I,
        env: impl IntoIterator<Item = (&'static str, &'static str)>,
    ) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command();
        cmd.args(args).envs(env);
        run_command(cmd, self.stdin.as_deref(), self.timeout)
    }

    /// Runs the binary with `args` on a Docker daemon of its own, started empty for this one
    /// run and stopped after it, as a CodeBuild host starts: no image, no build cache. The daemon
    /// is the engine under test (`ECRSHIP_TEST_ENGINE`), else the machine's dockerd (`local`),
    /// on its own socket, data root and bridge (`scripts/engines run`).
    pub fn run_on_fresh_daemon<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let ecrship = self.command();
        let mut cmd = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/engines"));
        cmd.env_clear();
        for (key, value) in ecrship.get_envs() {
            if let Some(value) = value {
                cmd.env(key, value);
            }
        }
        if let Some(dir) = ecrship.get_current_dir() {
            cmd.current_dir(dir);
        }
        let engine = env::var("ECRSHIP_TEST_ENGINE")
            .ok()
            .filter(|e| !e.is_empty() && e != "machine")
            .unwrap_or_else(|| "local".to_owned());
        cmd.args(["run", &engine])
            .arg(ecrship.get_program())
            .args(args);
        run_command(cmd, self.stdin.as_deref(), self.timeout)
    }

    /// The command `run` would execute, for tests that need more control.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ecrship"));
        cmd.current_dir(self.dir.path().join(&self.cwd)).env_clear();
        for (key, value) in env::vars_os() {
            if !is_cleared(&key) {
                cmd.env(key, value);
            }
        }
        for (key, value) in &self.env {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }
}

impl Default for Test {
    fn default() -> Self {
        Test::new()
    }
}

fn is_cleared(key: &OsStr) -> bool {
    let key = key.to_string_lossy();
    CLEARED_PREFIXES.iter().any(|p| key.starts_with(p)) || CLEARED.contains(&key.as_ref())
}

/// Run `cmd` with piped output; kill it and panic with what it printed after `timeout`.
pub fn run_command(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let shown = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_owned();
        thread::spawn(move || pipe.write_all(&input)); // ignore EPIPE: the child may not read
    }
    let stdout = read_in_background(child.stdout.take().unwrap());
    let stderr = read_in_background(child.stderr.take().unwrap());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let stdout = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
    let Some(status) = status else {
        panic!(
            "{shown} did not finish within {timeout:?}; killed.\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
        );
    };
    let code = status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        128 + status.signal().unwrap_or(0)
    });
    Output {
        code,
        stdout,
        stderr,
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

impl Output {
    /// Panic, showing both streams, unless the exit code is `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Output {
        assert_eq!(self.code, code, "unexpected exit code\n{self}");
        self
    }

    /// `assert_code(0)`.
    #[track_caller]
    pub fn assert_success(&self) -> &Output {
        self.assert_code(0)
    }

    /// stdout parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{self}"))
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The stack started by scripts/test.

#[derive(Debug)]
pub struct Stack {
    /// `127.0.0.1:<port>` of the docker-registry (htpasswd user `AWS`).
    pub registry: String,
    /// The registry's password: what moto's GetAuthorizationToken returns.
    pub registry_password: String,
    /// `http://127.0.0.1:<port>` of the moto server.
    pub aws_endpoint: String,
    /// A local busybox image to build `FROM` (nothing can be pulled).
    pub base_image: String,
    pub registry_bin: PathBuf,
    pub moto_bin: PathBuf,
}

/// The stack; panics when `scripts/test` (or `scripts/stack run`) did not start it.
pub fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        if env::var_os("ECRSHIP_TEST_STACK").is_none() {
            panic!("the test stack is not running: run scripts/test");
        }
        let var = |name: &str| {
            env::var(name).unwrap_or_else(|_| {
                panic!("the test stack is not running: run scripts/test ({name} is not set)")
            })
        };
        Stack {
            registry: var("ECRSHIP_TEST_REGISTRY"),
            registry_password: var("ECRSHIP_TEST_REGISTRY_PASSWORD"),
            aws_endpoint: var("ECRSHIP_TEST_AWS_ENDPOINT"),
            base_image: var("ECRSHIP_TEST_BASE_IMAGE"),
            registry_bin: var("ECRSHIP_TEST_REGISTRY_BIN").into(),
            moto_bin: var("ECRSHIP_TEST_MOTO_BIN").into(),
        }
    })
}

/// A name no other test (nor an earlier run) uses: `<prefix>-<pid>-<time>-<n>`, lowercase, valid
/// as a Docker repository name and as a tag.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 0x1000_0000;
    format!("{prefix}-{:x}-{t:x}-{n}", std::process::id())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn program(var: &str, fallback: &str) -> PathBuf {
    env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| fallback.into())
}

/// Start `make(port)` on free ports until `ready(port)`; retries when the process exits early
/// (another test took the port in between). Returns the child, the port and its log dir.
fn spawn_server(
    name: &str,
    dir: &TempDir,
    mut make: impl FnMut(u16) -> Command,
    ready: impl Fn(u16) -> bool,
    wait: Duration,
) -> (Child, u16) {
    let log = dir.path().join("log");
    for _attempt in 0..5 {
        let port = free_port();
        let mut cmd = make(port);
        let file = fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({cmd:?}): {e}"));
        let deadline = Instant::now() + wait;
        loop {
            if ready(port) {
                return (child, port);
            }
            if child.try_wait().unwrap().is_some() {
                break; // probably lost the port: try another
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let log = fs::read_to_string(&log).unwrap_or_default();
                panic!("{name} did not answer on 127.0.0.1:{port} within {wait:?}\n{log}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
    let log = fs::read_to_string(&log).unwrap_or_default();
    panic!("{name} exited before answering, 5 times; last log:\n{log}");
}

fn stop_child(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// An extra docker-registry of this test's own: htpasswd user `AWS` with the given password,
/// storage in a temp dir, on a free 127.0.0.1 port; killed on Drop (or by `stop`).
pub struct Registry {
    addr: String,
    password: String,
    child: Option<Child>,
    dir: TempDir,
}

impl Registry {
    pub fn start(password: &str) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("ecrship-registry.")
            .tempdir()
            .unwrap();
        let root = dir.path().to_owned();
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", "AWS", password])
            .output()
            .unwrap_or_else(|e| {
                panic!("run htpasswd (apache2-utils; scripts/test installs it): {e}")
            });
        assert!(htpasswd.status.success(), "htpasswd failed: {htpasswd:?}");
        fs::write(root.join("htpasswd"), htpasswd.stdout).unwrap();
        let bin = program("ECRSHIP_TEST_REGISTRY_BIN", "docker-registry");
        let (child, port) = spawn_server(
            "docker-registry",
            &dir,
            |port| {
                let config = format!(
                    "version: 0.1\n\
                     log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {root}/data\n  delete:\n    enabled: true\n\
                     http:\n  addr: 127.0.0.1:{port}\n  secret: ecrship-test-secret\n\
                     auth:\n  htpasswd:\n    realm: ecrship-test\n    path: {root}/htpasswd\n",
                    root = root.display()
                );
                fs::write(root.join("config.yml"), config).unwrap();
                let mut cmd = Command::new(&bin);
                cmd.arg("serve").arg(root.join("config.yml"));
                cmd
            },
            |port| matches!(http_get(&format!("127.0.0.1:{port}"), "/v2/", None), Ok(r) if r.status == 401),
            Duration::from_secs(30),
        );
        Registry {
            addr: format!("127.0.0.1:{port}"),
            password: password.to_owned(),
            child: Some(child),
            dir,
        }
    }

    /// `127.0.0.1:<port>`
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn tags(&self, repo: &str) -> Vec<String> {
        registry_tags(&self.addr, &self.password, repo)
    }

    pub fn digest(&self, repo: &str, tag: &str) -> Option<String> {
        registry_digest(&self.addr, &self.password, repo, tag)
    }

    /// Kill it now (e.g. to make a push fail mid-run); its address then refuses connections.
    pub fn stop(&mut self) {
        stop_child(&mut self.child);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A moto server of this test's own on a free 127.0.0.1 port; killed on Drop (or by `stop`).
pub struct Moto {
    endpoint: String,
    child: Option<Child>,
    dir: TempDir,
}

impl Moto {
    pub fn start() -> Moto {
        let dir = tempfile::Builder::new()
            .prefix("ecrship-moto.")
            .tempdir()
            .unwrap();
        let bin = program("ECRSHIP_TEST_MOTO_BIN", "moto_server");
        let (child, port) = spawn_server(
            "moto_server",
            &dir,
            |port| {
                let mut cmd = Command::new(&bin);
                cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
                cmd
            },
            |port| http_get(&format!("127.0.0.1:{port}"), "/moto-api/", None).is_ok(),
            Duration::from_secs(120),
        );
        Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Some(child),
            dir,
        }
    }

    /// `http://127.0.0.1:<port>`, for `Test::moto_env_at`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn stop(&mut self) {
        stop_child(&mut self.child);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTP/1.1 client (one request per connection) for the registry and the Docker socket.

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request over any stream; `headers` are sent as given, plus Host, Connection: close and
/// (with a body, or for POST/PUT) Content-Length.
pub fn http_request(
    mut stream: impl Read + Write,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;

    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {line:?}"),
            )
        })?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let mut response = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(response);
    }
    if response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size {line:?}"),
                )
            })?;
            if size == 0 {
                break;
            }
            let start = response.body.len();
            response.body.resize(start + size, 0);
            reader.read_exact(&mut response.body[start..])?;
            line.clear();
            reader.read_line(&mut line)?; // CRLF after the chunk
        }
    } else if let Some(len) = response
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        response.body.resize(len, 0);
        reader.read_exact(&mut response.body)?;
    } else {
        reader.read_to_end(&mut response.body)?;
    }
    Ok(response)
}

fn tcp(addr: &str) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    Ok(stream)
}

/// `Authorization` value for HTTP basic auth.
/// One call of an AWS JSON API (`X-Amz-Target`) on a moto server; panics unless it answers
/// 200, and returns the body. moto does not check signatures, so the one sent is a dummy.
pub fn moto_call(endpoint: &str, service: &str, target: &str, body: &str) -> String {
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let stream = TcpStream::connect(addr).expect("connect to moto");
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
    );
    let response = http_request(
        stream,
        addr,
        "POST",
        "/",
        &[
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", target),
            ("Authorization", &authorization),
        ],
        body.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{target}: {e}"));
    assert_eq!(response.status, 200, "{target}: {}", response.text());
    response.text()
}

pub fn basic_auth(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// GET `http://<addr><path>`, with basic auth `(user, password)` when given.
pub fn http_get(addr: &str, path: &str, auth: Option<(&str, &str)>) -> io::Result<HttpResponse> {
    let auth = auth.map(|(u, p)| basic_auth(u, p));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    http_request(tcp(addr)?, addr, "GET", path, &headers, b"")
}

/// The tags of `repo` in a registry (user `AWS`); empty when the repository does not exist.
pub fn registry_tags(registry: &str, password: &str, repo: &str) -> Vec<String> {
    let r = http_get(
        registry,
        &format!("/v2/{repo}/tags/list"),
        Some(("AWS", password)),
    )
    .unwrap_or_else(|e| panic!("GET {registry}/v2/{repo}/tags/list: {e}"));
    match r.status {
        404 => Vec::new(),
        200 => {
            let v: serde_json::Value = serde_json::from_slice(&r.body)
                .unwrap_or_else(|e| panic!("tags/list of {repo}: {e}: {}", r.text()));
            let mut tags: Vec<String> = v["tags"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            tags.sort();
            tags
        }
        s => panic!("GET {registry}/v2/{repo}/tags/list: HTTP {s}: {}", r.text()),
    }
}

/// The manifest digest (`sha256:...`) of `repo:tag` in a registry (user `AWS`); None when absent.
pub fn registry_digest(registry: &str, password: &str, repo: &str, tag: &str) -> Option<String> {
    const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
        application/vnd.docker.distribution.manifest.list.v2+json, \
        application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
    let auth = basic_auth("AWS", password);
    let path = format!("/v2/{repo}/manifests/{tag}");
    let stream = tcp(registry).unwrap_or_else(|e| panic!("connect {registry}: {e}"));
    let r = http_request(
        stream,
        registry,
        "HEAD",
        &path,
        &[("Authorization", &auth), ("Accept", ACCEPT)],
        b"",
    )
    .unwrap_or_else(|e| panic!("HEAD {registry}{path}: {e}"));
    match r.status {
        404 => None,
        200 => Some(
            r.header("docker-content-digest")
                .unwrap_or_else(|| panic!("HEAD {registry}{path}: no Docker-Content-Digest: {r:?}"))
                .to_owned(),
        ),
        s => panic!("HEAD {registry}{path}: HTTP {s}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The Docker daemon under test: the machine's, or an engine of scripts/engines.

/// Where the machine's daemon listens.
const MACHINE_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// The daemon under test as a `DOCKER_HOST` value: `ECRSHIP_TEST_DOCKER_HOST` (which
/// scripts/stack exports: the machine's socket, or the engine's that `ECRSHIP_TEST_ENGINE` chose),
/// else the machine's socket. The binary, `docker_api` and `docker_cli` all use it.
pub fn docker_host() -> String {
    env::var("ECRSHIP_TEST_DOCKER_HOST")
        .ok()
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| MACHINE_DOCKER_HOST.to_owned())
}

/// The socket path of `docker_host()`; panics on anything but `unix://`.
fn docker_socket() -> PathBuf {
    let host = docker_host();
    match host.strip_prefix("unix://") {
        Some(path) => path.into(),
        None => {
            panic!("ECRSHIP_TEST_DOCKER_HOST={host}: the tests reach the daemon on unix:// only")
        }
    }
}

/// The `docker` CLI on the daemon under test (the machine's own Docker config, and no
/// `DOCKER_CONTEXT` that could point it elsewhere); stdin is empty.
pub fn docker_cli() -> Command {
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_HOST", docker_host())
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null());
    cmd
}

/// The `docker` CLI with docker-buildx as its plugin (a private `DOCKER_CONFIG` that
/// scripts/stack exports as `ECRSHIP_TEST_BUILDX_CONFIG`), on the daemon under test: `docker
/// buildx build` then uses buildx's `docker` driver, i.e. that daemon's BuildKit. None when the
/// stack has no buildx (scripts/stack says why).
pub fn docker_buildx_cli() -> Option<Command> {
    let config = env::var_os("ECRSHIP_TEST_BUILDX_CONFIG").filter(|c| !c.is_empty())?;
    let mut cmd = docker_cli();
    cmd.env("DOCKER_CONFIG", config);
    Some(cmd)
}

/// A request to the Docker Engine API of the daemon under test (`docker_host`), e.g.
/// `docker_api("GET", "/images/ecrship-test/busybox:latest/json")`.
pub fn docker_api(method: &str, path: &str) -> io::Result<HttpResponse> {
    docker_api_with(method, path, &[])
}

/// `docker_api` with request headers (e.g. `X-Registry-Auth`).
pub fn docker_api_with(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<HttpResponse> {
    let stream = UnixStream::connect(docker_socket())?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    http_request(stream, "localhost", method, path, headers, b"")
}

/// The manifest `repo:reference` names in a registry (user `AWS`), as JSON; panics when absent.
pub fn registry_manifest(
    registry: &str,
    password: &str,
    repo: &str,
    reference: &str,
) -> serde_json::Value {
    const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
        application/vnd.docker.distribution.manifest.list.v2+json, \
        application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
    let auth = basic_auth("AWS", password);
    let path = format!("/v2/{repo}/manifests/{reference}");
    let stream = tcp(registry).unwrap_or_else(|e| panic!("connect {registry}: {e}"));
    let r = http_request(
        stream,
        registry,
        "GET",
        &path,
        &[("Authorization", &auth), ("Accept", ACCEPT)],
        b"",
    )
    .unwrap_or_else(|e| panic!("GET {registry}{path}: {e}"));
    assert_eq!(r.status, 200, "GET {registry}{path}: {}", r.text());
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", r.text()))
}

/// The image config of the single-platform image `repo:reference` in a registry, as JSON.
pub fn registry_config(
    registry: &str,
    password: &str,
    repo: &str,
    reference: &str,
) -> serde_json::Value {
    let manifest = registry_manifest(registry, password, repo, reference);
    let digest = manifest["config"]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("{repo}:{reference} is not one image: {manifest}"));
    let path = format!("/v2/{repo}/blobs/{digest}");
    let r = http_get(registry, &path, Some(("AWS", password)))
        .unwrap_or_else(|e| panic!("GET {registry}{path}: {e}"));
    // The registry may redirect blob reads to its storage; docker-registry's filesystem
    // driver answers them itself.
    assert_eq!(r.status, 200, "GET {registry}{path}: {}", r.text());
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Uploads `bytes` as a blob of `repo` in a registry (user `AWS`); returns its digest.
pub fn registry_put_blob(registry: &str, password: &str, repo: &str, bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
    let auth = basic_auth("AWS", password);
    let start = format!("/v2/{repo}/blobs/uploads/");
    let r = http_request(
        tcp(registry).unwrap(),
        registry,
        "POST",
        &start,
        &[("Authorization", &auth)],
        b"",
    )
    .unwrap_or_else(|e| panic!("POST {registry}{start}: {e}"));
    assert_eq!(r.status, 202, "POST {registry}{start}: {}", r.text());
    let location = r.header("location").expect("an upload location").to_owned();
    let location = location
        .strip_prefix(&format!("http://{registry}"))
        .unwrap_or(&location)
        .to_owned();
    let separator = if location.contains('?') { '&' } else { '?' };
    let put = format!("{location}{separator}digest={digest}");
    let r = http_request(
        tcp(registry).unwrap(),
        registry,
        "PUT",
        &put,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/octet-stream"),
        ],
        bytes,
    )
    .unwrap_or_else(|e| panic!("PUT {registry}{put}: {e}"));
    assert_eq!(r.status, 201, "PUT {registry}{put}: {}", r.text());
    digest
}

/// Puts `manifest` under `repo:tag` in a registry (user `AWS`).
pub fn registry_put_manifest(
    registry: &str,
    password: &str,
    repo: &str,
    tag: &str,
    manifest: &serde_json::Value,
) {
    let auth = basic_auth("AWS", password);
    let media_type = manifest["mediaType"]
        .as_str()
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_owned();
    let path = format!("/v2/{repo}/manifests/{tag}");
    let body = serde_json::to_vec(manifest).unwrap();
    let r = http_request(
        tcp(registry).unwrap(),
        registry,
        "PUT",
        &path,
        &[("Authorization", &auth), ("Content-Type", &media_type)],
        &body,
    )
    .unwrap_or_else(|e| panic!("PUT {registry}{path}: {e}"));
    assert_eq!(r.status, 201, "PUT {registry}{path}: {}", r.text());
}
