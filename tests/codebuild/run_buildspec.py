#!/usr/bin/env python3
"""Runs a buildspec as AWS CodeBuild would, on this machine: a test harness, not a product feature.

    run_buildspec.py --src DIR --artifacts OUT [--buildspec FILE] [--env NAME=VALUE]...

The commands run in DIR (CodeBuild's CODEBUILD_SRC_DIR) with this process's environment plus the
buildspec's, and with whatever the environment reaches (the Docker daemon, AWS_ENDPOINT_URL). The
files of `artifacts` are copied into OUT, keeping their paths. The log goes to stdout in the shape
of CodeBuild's own lines ("[Container] Entering phase BUILD", "Phase complete: BUILD State:
FAILED"); the last line is "Build status: SUCCEEDED" or "Build status: FAILED". Exit code: 0 the
build succeeded, 1 it failed, 2 the buildspec uses something this runner does not implement or
cannot be read.

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
- `env.variables` become environment variables; `env.parameter-store` values are read from SSM
  Parameter Store with decryption (`GetParameters`, through boto3, so `AWS_ENDPOINT_URL` points it
  at a stand-in) before the install phase; a parameter that cannot be read fails the build before
  any phase, as CodeBuild does while "Processing environment variables" ("Build specification
  reference", `env/parameter-store`). CodeBuild also sets CODEBUILD_SRC_DIR and CODEBUILD_BUILD_ID.
- `artifacts.files` (globs; `**` for any depth), `artifacts.base-directory` and
  `artifacts.discard-paths` ("Build specification reference", `artifacts`). A pattern that matches
  no file fails UPLOAD_ARTIFACTS, and with it the build (CodeBuild's "CLIENT_ERROR: no matching
  artifact paths found"); this runner is stricter than CodeBuild when some patterns match and
  others do not: every pattern must match.

What it does not implement, and refuses (exit 2) rather than ignores: `version: 0.1`, phase
`finally` blocks, `on-failure` other than ABORT, `run-as`, `runtime-versions`, `env` keys other
than `shell`, `variables` and `parameter-store` (`secrets-manager`, `exported-variables`,
`git-credential-helper`), `reports`, `cache`, `secondary-artifacts`, `batch`, and artifact keys
other than `files`, `base-directory`, `discard-paths` and `name`. Not modelled at all: the build
image and its runtimes, timeouts, the proxy, the source download (the commands run in DIR as it
is), and the upload itself (OUT is the artifact).

One build is `run_build(spec, src, out, env)`: a batch runner (`buildspec-batch.yml`, a
`build-graph` of builds, each with its own buildspec and variables) can call it once per node in
dependency order.
"""

import argparse
import glob
import os
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


class Unsupported(Exception):
    """The buildspec asks for something this runner does not implement."""


def log(message):
    print(f"[Container] {message}", flush=True)


def validate(spec):
    """Refuses what the runner does not implement, naming it."""
    if not isinstance(spec, dict):
        raise Unsupported("the buildspec is not a YAML mapping")
    if str(spec.get("version")) != "0.2":
        raise Unsupported(f"version {spec.get('version')!r}: only 0.2 is implemented")
    for key in spec:
        if key not in TOP_KEYS:
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


def run_build(spec, src, out, env):
    """One build of `spec` in `src`; the artifacts go to `out`. Returns True when it succeeded."""
    validate(spec)
    env_spec = spec.get("env") or {}
    env = dict(env)
    env.update({k: str(v) for k, v in (env_spec.get("variables") or {}).items()})
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", required=True, help="the source folder (CODEBUILD_SRC_DIR)")
    parser.add_argument("--artifacts", required=True, help="where the artifacts are copied")
    parser.add_argument("--buildspec", default="buildspec.yml", help="relative to --src")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    src = os.path.abspath(args.src)
    env = dict(os.environ)
    for item in args.env:
        name, _, value = item.partition("=")
        env[name] = value
    try:
        with open(os.path.join(src, args.buildspec)) as f:
            spec = yaml.safe_load(f)
        os.makedirs(args.artifacts, exist_ok=True)
        succeeded = run_build(spec, src, os.path.abspath(args.artifacts), env)
    except (Unsupported, OSError, yaml.YAMLError) as error:
        print(f"run_buildspec: {error}", file=sys.stderr)
        return 2
    print(f"Build status: {'SUCCEEDED' if succeeded else 'FAILED'}", flush=True)
    return 0 if succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
