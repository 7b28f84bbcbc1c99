#!/usr/bin/env python3
"""Runs a buildspec as AWS CodeBuild would, on this machine: a test harness, not a product feature.

    run_buildspec.py --src DIR --artifacts OUT [--buildspec FILE] [--env NAME=VALUE]... [--batch]

The commands run in DIR (CodeBuild's CODEBUILD_SRC_DIR) with this process's environment (the
build image's), the buildspec's variables and the --env variables (the project's), and with
whatever the environment reaches (the Docker daemon, AWS_ENDPOINT_URL). The files of `artifacts`
are copied into OUT, keeping their paths. With --batch, the buildspec runs as a batch build (see
below). The log goes to stdout in the shape of CodeBuild's own lines ("[Container] Entering phase
BUILD", "Phase complete: BUILD State: FAILED"); the last line is "Build status: SUCCEEDED" or
"Build status: FAILED" ("Batch status: ..." with --batch). Exit code: 0 the build succeeded, 1 it
failed, 2 the buildspec uses something this runner does not implement or cannot be read.

What it implements, and where the behaviour is documented:

- `version: 0.2` only. "Shells and commands in build environments" (CodeBuild user guide): in 0.1
  each command runs in its own shell, so a `cd` or an `export` is lost; 0.2 removes that
  limitation. Here every command runs in a fresh `sh -c` that starts from the exported variables
  and the working directory the previous command left, across phases (unexported shell variables
  and functions are not carried). `env.shell` may choose `bash` or `/bin/sh` (the default on
  Linux images, "Build specification reference", `env/shell`).
- Phases in order: install, pre_build, build, post_build ("Build specification reference",
  `phases`). In a phase, the commands run one after another; the first that exits non-zero fails
  the phase and the phase's remaining commands are skipped (`on-failure` defaults to ABORT).
- Phase transitions ("Build phase transitions", CodeBuild user guide): a failed install or
  pre_build ends the build; after a failed build, post_build still runs, and UPLOAD_ARTIFACTS is
  always attempted after post_build. `CODEBUILD_BUILD_SUCCEEDING` is `1` until a phase fails and
  `0` from then on ("Environment variables in build environments").
- `env.variables` become environment variables; a variable of the project (--env) or of the start
  of the build (a batch entry's `env/variables`) wins over the buildspec's ("Build specification
  reference", `env/variables`: the start build call first, then the project, then the buildspec).
  `env.parameter-store` values are read from SSM Parameter Store with decryption (`GetParameters`,
  through boto3, so `AWS_ENDPOINT_URL` points it at a stand-in) before the install phase; a
  parameter that cannot be read fails the build before any phase, as CodeBuild does while
  "Processing environment variables" ("Build specification reference", `env/parameter-store`).
  CodeBuild also sets CODEBUILD_SRC_DIR and CODEBUILD_BUILD_ID.
- `artifacts.files` (globs; `**` for any depth), `artifacts.base-directory` and
  `artifacts.discard-paths` ("Build specification reference", `artifacts`). A pattern that matches
  no file fails UPLOAD_ARTIFACTS, and with it the build (CodeBuild's "CLIENT_ERROR: no matching
  artifact paths found"); this runner is stricter than CodeBuild when some patterns match and
  others do not: every pattern must match.

A batch build (--batch; "Batch build buildspec reference" and "Run builds in batches", CodeBuild
user guide), of the `batch/build-graph` kind only:

- Each entry of `build-graph` is one build. `identifier` is required: letters, digits and `_`,
  fewer than 128 characters; CodeBuild rejects any other identifier with
  BATCH_SPEC_VALIDATION_ERROR before a build starts. So does the runner (a failed batch, exit 1),
  and the same way a `depend-on` that names no entry, or a cycle, which no order could run.
- A build starts once every build it `depend-on`s has completed ("This task will not run until
  these tasks are completed"); builds that are ready together start in the order listed. CodeBuild
  runs them at once, each on a host of its own; here they run one after another on this machine and
  its Docker daemon, whatever `env/type` says (an ARM_CONTAINER build runs on this machine's
  architecture).
- A build whose dependency failed is not started, unless that dependency has `ignore-failure: true`
  ("If this build task fails, the batch build can still succeed"). The batch fails when a build
  without `ignore-failure` fails or is not started. With `fast-fail: true` nothing starts after such
  a failure ("All running builds will be stopped when one of the build tasks fails"); with `false`,
  the default, the builds that do not depend on the failed one still run.
- A build without `buildspec` runs the batch buildspec itself, its `env`, `phases` and `artifacts`
  ("By default, all batch build tasks run with the build settings such as env and phases, specified
  in the buildspec file"); one with `buildspec` runs that file (its path relative to the source)
  instead. Inside a build, the `batch` section is ignored.
- An entry's `env/variables` win over the buildspec's and the project's: they are the overrides the
  build is started with. CodeBuild sets CODEBUILD_BATCH_BUILD_IDENTIFIER to the identifier
  ("Environment variables in build environments"). `env/privileged-mode: false` means no Docker
  daemon in the build ("Set to true only if the build project is used to build Docker images.
  Otherwise, a build that attempts to interact with the Docker daemon fails"): DOCKER_HOST then
  points at a socket that does not exist. True, or absent (the project's setting), leaves the daemon
  of this process's environment reachable, as in a single build. `env/type`, `env/image` and
  `env/compute-type` are logged, not modelled.
- Each build starts from its own copy of DIR: what one build writes into its source folder, no other
  build sees. Folders outside DIR (an install folder, say) are this machine's, shared by all.
- Each build's artifacts (its own buildspec's `artifacts`) go to OUT/<identifier>/; a build without
  `artifacts` has none and does not fail for it. This is what CodePipeline's CodeBuild action with
  `BatchEnabled` passes on ("Samples of CodePipeline/CodeBuild integrations and batch builds",
  CodeBuild user guide): with `CombineArtifacts` off, an output artifact named after an identifier
  holds that build's primary artifact; with it on, the action's one output artifact holds the
  primary artifacts of all the builds, combined. AWS documents the combining, not where each
  build's files land inside it; OUT/<identifier>/ keeps them apart.

What it does not implement, and refuses (exit 2) rather than ignores: `version: 0.1`, phase
`finally` blocks, `on-failure` other than ABORT, `run-as`, `runtime-versions`, `env` keys other
than `shell`, `variables` and `parameter-store` (`secrets-manager`, `exported-variables`,
`git-credential-helper`), `reports`, `cache`, `secondary-artifacts`, a `batch` section outside a
batch build, `batch` kinds other than `build-graph` (`build-list`, `build-matrix`, `build-fanout`),
the graph keys `debug-session` and `env/fleet`, and artifact keys other than `files`,
`base-directory`, `discard-paths` and `name`. Not modelled at all: the build image and its
runtimes, timeouts, the proxy, the source download (the commands run in DIR as it is), and the
upload itself (OUT is the artifact).
"""

import argparse
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import uuid

import yaml

PHASES = ("install", "pre_build", "build", "post_build")
PHASE_KEYS = {"commands"}
TOP_KEYS = {"version", "env", "phases", "artifacts"}
ENV_KEYS = {"shell", "variables", "parameter-store"}
ARTIFACT_KEYS = {"files", "base-directory", "discard-paths", "name"}
SHELLS = {"bash": "bash", "/bin/sh": "/bin/sh", "sh": "/bin/sh"}
BATCH_KEYS = {"fast-fail", "build-graph"}
BATCH_KINDS = {"build-list", "build-matrix", "build-fanout"}
GRAPH_KEYS = {"identifier", "buildspec", "env", "depend-on", "ignore-failure"}
GRAPH_ENV_KEYS = {"type", "image", "compute-type", "privileged-mode", "variables"}
# What CodeBuild accepts as a build identifier (its BATCH_SPEC_VALIDATION_ERROR says: "must
# contain only alphanumeric characters and underscores and be less than 128 characters").
IDENTIFIER = re.compile(r"[A-Za-z0-9_]{1,127}")


class Unsupported(Exception):
    """The buildspec asks for something this runner does not implement."""


class BatchSpecError(Exception):
    """CodeBuild would reject the batch buildspec before starting any build."""


def log(message):
    print(f"[Container] {message}", flush=True)


def validate(spec, in_batch=False):
    """Refuses what the runner does not implement, naming it. In a build of a batch, the `batch`
    section is allowed (and ignored)."""
    if not isinstance(spec, dict):
        raise Unsupported("the buildspec is not a YAML mapping")
    if str(spec.get("version")) != "0.2":
        raise Unsupported(f"version {spec.get('version')!r}: only 0.2 is implemented")
    for key in spec:
        if key == "batch" and not in_batch:
            raise Unsupported("top-level key `batch`: a batch buildspec runs with --batch")
        if key not in TOP_KEYS and key != "batch":
            raise Unsupported(f"top-level key `{key}` is not implemented")
    for key in (spec.get("env") or {}):
        if key not in ENV_KEYS:
            raise Unsupported(f"env key `{key}` is not implemented")
    shell = (spec.get("env") or {}).get("shell", "/bin/sh")
    if shell not in SHELLS:
        raise Unsupported(f"env shell `{shell}` is not implemented (bash or /bin/sh)")
    for name, phase in (spec.get("phases") or {}).items():
        if name not in PHASES:
            raise Unsupported(f"phase `{name}` is not a CodeBuild phase")
        for key in (phase or {}):
            if key not in PHASE_KEYS:
                raise Unsupported(f"phase `{name}` key `{key}` is not implemented")
    for key in (spec.get("artifacts") or {}):
        if key not in ARTIFACT_KEYS:
            raise Unsupported(f"artifacts key `{key}` is not implemented")


def parameter_store(names):
    """The values of `env.parameter-store` ({variable: parameter name}), decrypted."""
    if not names:
        return {}
    import boto3  # only needed here; moto's venv has it

    client = boto3.client("ssm")
    wanted = sorted(set(names.values()))
    values = {}
    for start in range(0, len(wanted), 10):  # GetParameters takes at most 10 names
        answer = client.get_parameters(Names=wanted[start:start + 10], WithDecryption=True)
        if answer.get("InvalidParameters"):
            raise LookupError(f"parameters not found: {', '.join(answer['InvalidParameters'])}")
        for parameter in answer["Parameters"]:
            values[parameter["Name"]] = parameter["Value"]
    return {variable: values[name] for variable, name in names.items()}


class Shell:
    """Runs commands so that exported variables and the working directory carry over from one
    command to the next, as one shell would."""

    def __init__(self, program, env, cwd, state_dir):
        self.program = program
        self.env = dict(env)
        self.cwd = cwd
        self.state = state_dir

    def run(self, command):
        exports = os.path.join(self.state, "exports")
        where = os.path.join(self.state, "cwd")
        script = "\n".join([
            command,
            "__codebuild_status=$?",
            f"export -p > {shlex.quote(exports)}",
            f"pwd > {shlex.quote(where)}",
            "exit $__codebuild_status",
        ])
        for path in (exports, where):
            if os.path.exists(path):
                os.unlink(path)
        status = subprocess.run(
            [self.program, "-c", script], cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL
        ).returncode
        if os.path.exists(exports) and os.path.exists(where):
            self.env = self.read_exports(exports)
            with open(where) as f:
                self.cwd = f.read().rstrip("\n")
        return status

    def read_exports(self, path):
        """The environment `export -p` printed, read back by the same shell."""
        dump = subprocess.run(
            [self.program, "-c", f". {shlex.quote(path)}; env -0"],
            env={}, capture_output=True, check=True,
        ).stdout
        env = {}
        for item in dump.split(b"\0"):
            if b"=" in item:
                name, value = item.split(b"=", 1)
                env[name.decode()] = value.decode(errors="surrogateescape")
        for name in ("PWD", "OLDPWD", "SHLVL", "_"):
            env.pop(name, None)
        return env


def collect(artifacts, src, out):
    """Copies the files of `artifacts` into `out`; False when a pattern matches nothing."""
    base = os.path.join(src, str(artifacts.get("base-directory", ".")))
    discard = str(artifacts.get("discard-paths", "no")).lower() in ("yes", "true")
    ok = True
    for pattern in artifacts.get("files") or []:
        matches = [p for p in glob.glob(os.path.join(base, pattern), recursive=True)
                   if os.path.isfile(p)]
        if not matches:
            log(f"Expanding {pattern}: no matching artifact paths found")
            ok = False
            continue
        for path in sorted(matches):
            relative = os.path.relpath(path, base)
            target = os.path.join(out, os.path.basename(path) if discard else relative)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(path, target)
            log(f"Collected {relative}")
    return ok


def run_build(spec, src, out, env, overrides=None, in_batch=False):
    """One build of `spec` in `src`; the artifacts go to `out`. `env` is the build image's
    environment, `overrides` the project's variables and those the build is started with, which
    win over the buildspec's. Returns True when it succeeded."""
    validate(spec, in_batch)
    env_spec = spec.get("env") or {}
    env = dict(env)
    env.update({k: str(v) for k, v in (env_spec.get("variables") or {}).items()})
    env.update(overrides or {})
    env.setdefault("CODEBUILD_BUILD_ID", f"ecrship-test:{uuid.uuid4()}")
    env["CODEBUILD_SRC_DIR"] = src
    env["CODEBUILD_BUILD_SUCCEEDING"] = "1"
    log("Processing environment variables")
    try:
        env.update(parameter_store(env_spec.get("parameter-store") or {}))
    except Exception as error:  # noqa: BLE001 - any failure here fails the build, as in CodeBuild
        log(f"Phase context status code: Decrypted Variables Error Message: {error}")
        return False

    phases = spec.get("phases") or {}
    with tempfile.TemporaryDirectory(prefix="codebuild-shell.") as state:
        shell = Shell(SHELLS[env_spec.get("shell", "/bin/sh")], env, src, state)
        succeeded = True
        for name in PHASES:
            if not succeeded and name != "post_build":
                break  # a failed install or pre_build ends the build; a failed build reaches post_build
            log(f"Entering phase {name.upper()}")
            phase_ok = True
            for command in (phases.get(name) or {}).get("commands") or []:
                log(f"Running command {command}")
                status = shell.run(str(command))
                if status != 0:
                    log(f"Command did not exit successfully {command} exit status {status}")
                    phase_ok = False
                    break
            log(f"Phase complete: {name.upper()} State: {'SUCCEEDED' if phase_ok else 'FAILED'}")
            if not phase_ok:
                succeeded = False
                shell.env["CODEBUILD_BUILD_SUCCEEDING"] = "0"
        else:
            # Reached after post_build, whatever build did: UPLOAD_ARTIFACTS is always attempted.
            artifacts = spec.get("artifacts")
            if artifacts:
                log("Entering phase UPLOAD_ARTIFACTS")
                uploaded = collect(artifacts, src, out)
                state_word = "SUCCEEDED" if uploaded else "FAILED"
                log(f"Phase complete: UPLOAD_ARTIFACTS State: {state_word}")
                if not uploaded:
                    log("Phase context status code: CLIENT_ERROR Message: no matching artifact paths found")
                    succeeded = False
        return succeeded


def boolean(value, where):
    """A buildspec Boolean (YAML true/false, or the strings "true"/"false")."""
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise BatchSpecError(f"{where}: `{value}` is not a Boolean")


class Job:
    """One entry of `batch/build-graph`."""

    def __init__(self, entry, index):
        if not isinstance(entry, dict):
            raise BatchSpecError(f"build-graph entry {index + 1} is not a mapping")
        for key in entry:
            if key not in GRAPH_KEYS:
                raise Unsupported(f"build-graph key `{key}` is not implemented")
        self.identifier = str(entry.get("identifier", ""))
        if not IDENTIFIER.fullmatch(self.identifier):
            raise BatchSpecError(
                f"build identifier `{self.identifier}` must contain only alphanumeric characters "
                "and underscores and be less than 128 characters in length"
            )
        where = f"build `{self.identifier}`"
        self.buildspec = entry.get("buildspec")
        env = entry.get("env") or {}
        if not isinstance(env, dict):
            raise BatchSpecError(f"{where}: `env` is not a mapping")
        for key in env:
            if key not in GRAPH_ENV_KEYS:
                raise Unsupported(f"build-graph key `env/{key}` is not implemented")
        self.type = env.get("type")
        self.image = env.get("image")
        self.compute_type = env.get("compute-type")
        self.privileged = (
            None if "privileged-mode" not in env
            else boolean(env["privileged-mode"], f"{where}: privileged-mode")
        )
        self.variables = {str(k): str(v) for k, v in (env.get("variables") or {}).items()}
        depend_on = entry.get("depend-on") or []
        if not isinstance(depend_on, list):
            raise BatchSpecError(f"{where}: `depend-on` is not a list")
        self.depend_on = [str(d) for d in depend_on]
        self.ignore_failure = boolean(entry.get("ignore-failure", False),
                                      f"{where}: ignore-failure")

    def describe(self):
        parts = [p for p in (self.type, self.image, self.compute_type) if p]
        if self.privileged is not None:
            parts.append("privileged mode" if self.privileged else "no privileged mode")
        return f" ({', '.join(parts)})" if parts else ""


def build_graph(spec):
    """The builds of a batch buildspec, in the order they start; refuses what the runner does not
    implement and rejects what CodeBuild rejects."""
    if not isinstance(spec, dict):
        raise Unsupported("the buildspec is not a YAML mapping")
    batch = spec.get("batch")
    if not isinstance(batch, dict):
        raise Unsupported("--batch: the buildspec has no `batch` mapping")
    for key in batch:
        if key in BATCH_KINDS:
            raise Unsupported(f"batch kind `{key}` is not implemented (build-graph only)")
        if key not in BATCH_KEYS:
            raise Unsupported(f"batch key `{key}` is not implemented")
    entries = batch.get("build-graph")
    if not isinstance(entries, list) or not entries:
        raise BatchSpecError("`batch/build-graph` is not a list of builds")
    jobs = [Job(entry, i) for i, entry in enumerate(entries)]
    known = {}
    for job in jobs:
        if job.identifier in known:
            raise BatchSpecError(f"build identifier `{job.identifier}` is used twice")
        known[job.identifier] = job
    for job in jobs:
        for dependency in job.depend_on:
            if dependency not in known:
                raise BatchSpecError(
                    f"build `{job.identifier}` depends on `{dependency}`, which is not in the graph"
                )
    ordered, placed = [], set()
    while len(ordered) < len(jobs):
        ready = [j for j in jobs if j.identifier not in placed
                 and all(d in placed for d in j.depend_on)]
        if not ready:
            cycle = ", ".join(j.identifier for j in jobs if j.identifier not in placed)
            raise BatchSpecError(f"the build graph has a cycle among {cycle}")
        ordered.append(ready[0])
        placed.add(ready[0].identifier)
    fast_fail = boolean(batch.get("fast-fail", False), "batch/fast-fail")
    return ordered, fast_fail


def load_buildspec(path):
    with open(path) as f:
        return yaml.safe_load(f)


def batch_log(message):
    print(f"[Batch] {message}", flush=True)


def run_batch(spec, src, out, env, overrides):
    """The batch build of `spec`: each build of its graph on its own copy of `src`, its artifacts
    in `out/<identifier>`. Returns True when the batch succeeded."""
    try:
        jobs, fast_fail = build_graph(spec)
    except BatchSpecError as error:
        batch_log(f"Phase context status code: BATCH_SPEC_VALIDATION_ERROR Message: {error}")
        return False
    # Every build's buildspec is read and checked before the first build starts, so that what the
    # runner does not implement stops it before anything runs; a file that is not there fails only
    # its own build, as in CodeBuild.
    specs = {}
    for job in jobs:
        if job.buildspec is None:
            specs[job.identifier] = spec
        elif os.path.isfile(os.path.join(src, str(job.buildspec))):
            specs[job.identifier] = load_buildspec(os.path.join(src, str(job.buildspec)))
        if job.identifier in specs:
            validate(specs[job.identifier], in_batch=True)
    by_id = {job.identifier: job for job in jobs}
    status = {}
    stop = False
    with tempfile.TemporaryDirectory(prefix="codebuild-batch.") as hosts:
        for job in jobs:
            blocking = [d for d in job.depend_on
                        if status[d] != "SUCCEEDED"
                        and not (status[d] == "FAILED" and by_id[d].ignore_failure)]
            if blocking or stop:
                why = (f"{', '.join(blocking)} did not succeed" if blocking
                       else "fast-fail stopped the batch")
                batch_log(f"Build {job.identifier}: NOT STARTED ({why})")
                status[job.identifier] = "NOT_STARTED"
                continue
            batch_log(f"Starting build {job.identifier}{job.describe()}")
            job_src = os.path.join(hosts, job.identifier, "src")
            shutil.copytree(src, job_src, symlinks=True)
            job_env = dict(env)
            job_env["CODEBUILD_BATCH_BUILD_IDENTIFIER"] = job.identifier
            job_env["CODEBUILD_BUILD_ID"] = f"ecrship-test:{uuid.uuid4()}"
            if job.privileged is False:
                nowhere = os.path.join(hosts, job.identifier, "no-docker.sock")
                job_env["DOCKER_HOST"] = f"unix://{nowhere}"
            job_spec = specs.get(job.identifier)
            if job_spec is None:
                log(f"Phase context status code: YAML_FILE_ERROR Message: "
                    f"buildspec `{job.buildspec}` does not exist")
                succeeded = False
            else:
                succeeded = run_build(job_spec, job_src, os.path.join(out, job.identifier),
                                      job_env, {**overrides, **job.variables}, in_batch=True)
            status[job.identifier] = "SUCCEEDED" if succeeded else "FAILED"
            batch_log(f"Build {job.identifier}: {status[job.identifier]}")
            if not succeeded and not job.ignore_failure and fast_fail:
                stop = True
    return all(status[j.identifier] == "SUCCEEDED" or j.ignore_failure for j in jobs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", required=True, help="the source folder (CODEBUILD_SRC_DIR)")
    parser.add_argument("--artifacts", required=True, help="where the artifacts are copied")
    parser.add_argument("--buildspec", default="buildspec.yml", help="relative to --src")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a variable of the project")
    parser.add_argument("--batch", action="store_true", help="run the buildspec as a batch build")
    args = parser.parse_args()
    src = os.path.abspath(args.src)
    env = dict(os.environ)
    overrides = {}
    for item in args.env:
        name, _, value = item.partition("=")
        overrides[name] = value
    try:
        spec = load_buildspec(os.path.join(src, args.buildspec))
        os.makedirs(args.artifacts, exist_ok=True)
        out = os.path.abspath(args.artifacts)
        if args.batch:
            succeeded = run_batch(spec, src, out, env, overrides)
        else:
            succeeded = run_build(spec, src, out, env, overrides)
    except (Unsupported, OSError, yaml.YAMLError) as error:
        print(f"run_buildspec: {error}", file=sys.stderr)
        return 2
    word = "Batch status" if args.batch else "Build status"
    print(f"{word}: {'SUCCEEDED' if succeeded else 'FAILED'}", flush=True)
    return 0 if succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
