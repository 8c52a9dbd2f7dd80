"""SshTarget: the standalone runner on a remote board (a Raspberry Pi) over the system OpenSSH client.

Why the system `ssh` and not a library such as asyncssh or paramiko: users already have a working
`ssh pi` (keys, agent, ~/.ssh/config with User, Port, IdentityFile, ProxyJump, Match blocks,
known_hosts with hashed names and @cert-authority lines). OpenSSH honours all of it exactly; a library
re-implements a subset and differs in the corners (ProxyJump chains, agent forwarding, FIDO keys).
OpenSSH's ControlMaster gives the same benefit a library connection would — one TCP connection and
one login for the whole run; each later command is a cheap multiplexed channel (~10 ms) — and it adds
no dependency to the harness. The price is parsing ssh's stderr for error classes, done once below.

Security defaults: host keys are verified (StrictHostKeyChecking=yes; `accept-new` only on request,
never `no`, and a *changed* key is always refused by ssh itself), BatchMode=yes so no password is ever
prompted for or passed, and every remote path is quoted with shlex.quote.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from targets.errors import TargetError
from targets.base import RUNNER_PATH, Target, failure, parse_runner_output
from targets.ssh_files import Bundle, bundle_for

# This machine's control folders: CONTROL_PREFIX<pid>-XXXXXXXX in the temporary folder.
CONTROL_PREFIX = "edgebench-ssh-"

# The per-user cache folder on the board (relative to the remote $HOME); the provisioned venv lives here.
REMOTE_CACHE = ".cache/edgebench"
MIN_PYTHON = (3, 9)

# Seconds between keepalives and how many may go unanswered: a silently dead link is noticed in ~15 s.
ALIVE_INTERVAL, ALIVE_COUNT = 5, 3

# Exit codes of the remote wrapper script (below) for problems of the board rather than the measurement.
_NO_PYTHON, _NO_SCRATCH, _NO_COPY = 96, 97, 98
_SSH_FAILED = 255


class SshError(TargetError):
    """A TargetError with a `kind` doctor can sort by: resolve, unreachable, hostkey (unknown), hostkey_changed,
    login, lost, remote."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def parse_target_spec(spec: str) -> tuple[str, str | None, int | None]:
    """`ssh://[user@]host[:port]` or a bare `[user@]alias` -> (host, user, port)."""
    if spec.startswith("ssh://") and spec.isprintable():
        parts = urlsplit(spec)
        if not parts.hostname or parts.path not in ("", "/") or parts.password:
            raise TargetError(f"bad target {spec!r}: use ssh://[user@]host[:port] or a Host alias from your ssh config")
        try:
            port = parts.port
        except ValueError:
            raise TargetError(f"bad port in target {spec!r}: use ssh://[user@]host[:port]") from None
        return parts.hostname, parts.username, port
    user, _, host = spec.rpartition("@")
    if not host or any(c in host for c in "/: ") or host.startswith("-") or not spec.isprintable():
        raise TargetError(f"bad target {spec!r}: use ssh://[user@]host[:port] or a Host alias from your ssh config")
    return host, user or None, None


def forget_key_command(dest: dict[str, str]) -> str:
    """The ssh-keygen command that removes a host's pinned key (from the known_hosts file ssh uses)."""
    host, port = dest["hostname"], dest["port"]
    key = host if port == "22" else f"[{host}]:{port}"
    known = dest.get("userknownhostsfile", "").split()
    file_opt = f"-f {shlex.quote(known[0])} " if known and not known[0].endswith("/.ssh/known_hosts") else ""
    return f"ssh-keygen {file_opt}-R {shlex.quote(key)}"


def explain_ssh_failure(stderr: str, name: str, dest: dict[str, str]) -> SshError:
    """Turn what ssh printed into one line: what is wrong, which host, what to do."""
    host, port, user = dest["hostname"], dest["port"], dest["user"]
    where = f"{host}:{port}" if name in (host, f"ssh://{host}") else f"{name} ({host}:{port})"
    text = stderr.strip()
    low = text.lower()
    if "remote host identification has changed" in low or ("host key for" in low and "has changed" in low):
        return SshError(
            f"host key for {where} has changed (a reinstalled board, or someone in between): if you trust "
            f"the change, remove the old key with `{forget_key_command(dest)}` and connect once "
            "with ssh to check the new fingerprint; edgebench never accepts a changed key",
            "hostkey_changed",
        )
    if "host key verification failed" in low or "host key is known for" in low:
        return SshError(
            f"host key for {where} is unknown: connect once with `ssh {name}` and check the fingerprint, "
            "or pass --accept-new-host-key to trust it on first use",
            "hostkey",
        )
    if "could not resolve hostname" in low or "name or service not known" in low:
        return SshError(f"cannot resolve host {host} ({name}): check the name, your DNS, or the Host entry in your ssh config", "resolve")
    if "connection refused" in low:
        return SshError(f"connection refused by {host}:{port} ({name}): is the board on and sshd running on port {port}?", "unreachable")
    if any(s in low for s in ("timed out", "network is unreachable", "no route to host", "host is down")):
        return SshError(f"cannot reach {host}:{port} ({name}): {_last_line(text)}; is the board on and on this network?", "unreachable")
    if "permission denied" in low or "too many authentication failures" in low:
        return SshError(
            f"login refused for {user}@{host} ({name}): check your key / ssh-agent "
            f"(`ssh-copy-id -p {port} {user}@{host}` installs one), and the User in your ssh config",
            "login",
        )
    if any(s in low for s in ("connection closed by", "connection reset by", "kex_exchange_identification")):
        return SshError(
            f"{host}:{port} ({name}) closed the connection during login: {_last_line(text)}; "
            "check sshd's AllowUsers/MaxStartups and its log on the board",
            "login",
        )
    return SshError(f"ssh to {name} failed: {_last_line(text) or 'no message from ssh'}", "unreachable")


def die_with_us() -> tuple[list[str], Callable[[], None] | None]:
    """(command prefix, preexec_fn) that make a child get SIGTERM when this process dies, even by SIGKILL.

    The kernel's parent-death signal: util-linux `setpriv --pdeathsig` where it exists (no Python code
    between fork and exec, which is unsafe beside threads), else prctl from the forked child. ssh ends
    on SIGTERM like on `-O exit`: it logs out and removes its control socket. Only a master that started
    in a thread dies with that thread (Linux sends the signal when the forking thread ends); the harness
    opens and closes each target in one thread, and a master gone early is restarted on the next call.
    """
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, "--pdeathsig", "TERM", "--"], None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return [], None  # not Linux: the master can outlive a killed edgebench; SIGINT/SIGTERM still close it
    pr_set_pdeathsig = 1
    return [], lambda: prctl(pr_set_pdeathsig, signal.SIGTERM)


def _sweep_stale_control_dirs() -> None:
    """Remove control folders of edgebench processes that died without cleaning up (SIGKILL, power loss)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{CONTROL_PREFIX}*"):
        pid = folder.name[len(CONTROL_PREFIX):].split("-")[0]
        try:
            if not pid.isdigit() or folder.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)  # its owner is gone (ssh removed its socket on SIGTERM)
        except OSError:
            continue  # alive under another user, or unreadable: not ours to touch


def _cleanup(master: subprocess.Popen[bytes], ctl_dir: Path) -> None:
    """Stop a master connection by its PID and remove its control folder."""
    if master.poll() is None:
        master.terminate()
        try:
            master.wait(5)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()
    shutil.rmtree(ctl_dir, ignore_errors=True)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("@@@", "Warning: Permanently"))]
    return lines[-1] if lines else ""


def _sq(path: str) -> str:
    """Quote a remote path for sh; a leading ~/ stays expandable."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


class SshTarget(Target):
    """The runner on a board reached with OpenSSH: one multiplexed connection, models cached by sha256."""

    def __init__(
        self,
        spec: str,
        ssh_config: Path | None = None,
        accept_new_host_key: bool = False,
        python: str | None = None,
        connect_timeout: float = 10,
    ) -> None:
        self.name = spec
        self.host, self.user, self.port = parse_target_spec(spec)
        self.ssh_config = Path(ssh_config) if ssh_config else None
        if self.ssh_config and not self.ssh_config.is_file():
            raise TargetError(f"ssh config file {self.ssh_config} does not exist; fix --ssh-config")
        self.accept_new_host_key = accept_new_host_key
        self.python = python
        self.connect_timeout = connect_timeout
        # One measurement at a time per board: the harness calls each target from its own thread.
        self._lock = threading.RLock()
        self._ctl_dir: Path | None = None
        self._master: subprocess.Popen[bytes] | None = None
        self._finalizer: Callable[[], None] = lambda: None
        self._dest: dict[str, str] | None = None
        self.remote_home: str | None = None
        self._runner_remote: str | None = None

    # ------------------------------------------------------------------ ssh command lines

    def _options(self) -> list[str]:
        opts = ["-F", str(self.ssh_config)] if self.ssh_config else []
        opts += [
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=" + ("accept-new" if self.accept_new_host_key else "yes"),
            "-o", f"ConnectTimeout={max(1, math.ceil(self.connect_timeout))}",
            "-o", f"ServerAliveInterval={ALIVE_INTERVAL}",
            "-o", f"ServerAliveCountMax={ALIVE_COUNT}",
        ]  # fmt: skip
        if self.port:
            opts += ["-p", str(self.port)]
        if self.user:
            opts += ["-l", self.user]
        return opts

    def _ssh(self, remote_command: str) -> list[str]:
        assert self._ctl_dir is not None
        # ControlMaster=no: use the master if it is there, never start a second one in the foreground.
        return ["ssh", *self._options(), "-o", f"ControlPath={self._ctl_dir / 'cm'}", "-o", "ControlMaster=no",
                "--", self.host, remote_command]  # fmt: skip

    def destination(self) -> dict[str, str]:
        """The effective user, hostname, port and known_hosts file from `ssh -G` (no connection made)."""
        if self._dest is None:
            if shutil.which("ssh") is None:
                raise SshError("the OpenSSH client `ssh` is not installed here: apt install openssh-client", "local")
            proc = subprocess.run(["ssh", *self._options(), "-G", "--", self.host], capture_output=True, text=True,
                                  timeout=30)  # fmt: skip
            if proc.returncode != 0:
                raise SshError(f"ssh cannot use target {self.name}: {_last_line(proc.stderr)}", "config")
            dest: dict[str, str] = {}
            for line in proc.stdout.splitlines():
                key, _, value = line.partition(" ")
                dest.setdefault(key, value)
            self._dest = dest
        return self._dest

    def where(self) -> str:
        d = self.destination()
        return f"{d['user']}@{d['hostname']}:{d['port']}"

    # ------------------------------------------------------------------ connection

    def connect(self) -> None:
        """Start (or restart) the master connection; raise SshError with the fix if ssh cannot log in."""
        with self._lock:
            if self._master is not None and self._master.poll() is None:
                return
            self._stop_master()
            dest = self.destination()
            _sweep_stale_control_dirs()
            # A private folder (mode 0700) in /tmp, named after this process so a later run can remove it
            # if this one is killed; /tmp and not the run folder, because a socket path must fit in 108 bytes.
            self._ctl_dir = Path(tempfile.mkdtemp(prefix=f"{CONTROL_PREFIX}{os.getpid()}-"))
            log_path = self._ctl_dir / "master.log"
            sock = self._ctl_dir / "cm"
            prefix, preexec = die_with_us()
            with open(log_path, "wb") as log:
                # ControlPersist=no keeps the master in the foreground as our child: its PID is ours to stop,
                # and the parent-death signal ends it with us (a persisting master would detach from both).
                self._master = master = subprocess.Popen(
                    [*prefix, "ssh", *self._options(), "-o", f"ControlPath={sock}", "-o", "ControlMaster=yes",
                     "-o", "ControlPersist=no", "-N", "--", self.host],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, preexec_fn=preexec,
                )  # fmt: skip
            # A target dropped without close() must not leave its ssh process or control folder behind.
            self._finalizer = weakref.finalize(self, _cleanup, master, self._ctl_dir)
            # The control socket appears once the master has logged in; a failed login ends the master.
            deadline = time.monotonic() + self.connect_timeout + 10
            while not sock.exists():
                if self._master.poll() is not None:
                    err = log_path.read_text(errors="replace")
                    self._stop_master()
                    raise explain_ssh_failure(err, self.name, dest)
                if time.monotonic() > deadline:
                    self._stop_master()
                    raise SshError(
                        f"no answer from {self.name} ({dest['hostname']}:{dest['port']}) within "
                        f"{self.connect_timeout + 10:.0f} s during login: is the board overloaded or the link down?",
                        "unreachable",
                    )
                time.sleep(0.02)
            proc = self.shell('printf "%s\\n" "$HOME"', timeout=30)
            if proc.returncode != 0 or not proc.stdout.strip():
                raise SshError(f"cannot run a command on {self.name}: {_last_line(proc.stderr)}", "login")
            self.remote_home = proc.stdout.strip().splitlines()[-1]
            self._runner_remote = None

    def _stop_master(self) -> None:
        if self._master is not None or self._ctl_dir is not None:
            self._finalizer()
        self._master = None
        self._ctl_dir = None

    def open(self) -> None:
        """Connect, check the board has Python >= 3.9, numpy and onnxruntime (SshError with the fix), then take
        the board's lock."""
        with self._lock:
            self.connect()
            info = self.probe().get("machine") or {}
            problem = usability_problem(info, self.name)
            if problem:
                raise SshError(f"{self.name}: {problem}", "remote")
            self.take_board()

    def close(self) -> None:
        with self._lock:
            self.release_board()
            self._stop_master()

    def lock_command(self) -> list[str]:
        # Through the master connection: when it drops, the board's sshd ends the session and the lock with it.
        script = f"""
py={self._python_expr()}
command -v "$py" >/dev/null 2>&1 || {{ echo "edgebench: no Python interpreter $py on $(hostname)" >&2; exit {_NO_PYTHON}; }}
exec "$py" {shlex.quote(self._runner())} -
"""
        return self._ssh("sh -c " + shlex.quote(script))

    def lock_file(self) -> str:
        return f"{self.cache_dir}/board.lock"

    def shell(self, script: str, timeout: float, stdin: Any = None, input: str | None = None
              ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run `sh -c script` on the board through the master connection (connects if needed)."""
        if self._master is None or self._master.poll() is not None:
            self.connect()
        return subprocess.run(self._ssh("sh -c " + shlex.quote(script)), stdin=stdin, input=input,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    # ------------------------------------------------------------------ files

    @property
    def cache_dir(self) -> str:
        assert self.remote_home is not None
        return self.remote_home.rstrip("/") + "/" + REMOTE_CACHE

    def _stage(self, bundles: list[Bundle]) -> None:
        """Copy what the board lacks: the runner and each file bundle, cached by sha256."""
        wanted: dict[str, Path] = {}
        for b in bundles:
            for rel, local in b.members:
                wanted[f"{self.cache_dir}/models/{b.sha256}/{rel}"] = local
        script = "for p in " + " ".join(shlex.quote(p) for p in wanted) + '; do [ -f "$p" ] || printf "%s\\n" "$p"; done'
        proc = self._checked(script, timeout=60, what="checking the model cache")
        for remote in proc.stdout.splitlines():
            if remote in wanted:
                self._upload(wanted[remote], remote)

    def _upload(self, local: Path, remote: str) -> None:
        folder = remote.rpartition("/")[0]
        # Write to a temporary name and rename: a half-copied file must never look cached.
        script = (f"t={shlex.quote(remote + '.part')}.$$; mkdir -p {shlex.quote(folder)} && cat > \"$t\" "
                  f"&& mv -f \"$t\" {shlex.quote(remote)} || {{ rm -f \"$t\"; exit 1; }}")
        size = local.stat().st_size
        with open(local, "rb") as f:
            proc = subprocess.run(self._ssh("sh -c " + shlex.quote(script)), stdin=f, capture_output=True,
                                  timeout=60 + size / 100_000)  # fmt: skip
        if proc.returncode != 0:
            self._raise_remote(proc.returncode, proc.stderr.decode(errors="replace"), f"copying {local.name}")

    def _runner(self) -> str:
        if self._runner_remote is None:
            b = bundle_for(RUNNER_PATH)
            self._stage([b])
            self._runner_remote = f"{self.cache_dir}/models/{b.sha256}/{RUNNER_PATH.name}"
        return self._runner_remote

    def _checked(self, script: str, timeout: float, what: str) -> subprocess.CompletedProcess[str]:
        proc = self.shell(script, timeout=timeout)
        if proc.returncode != 0:
            self._raise_remote(proc.returncode, proc.stderr, what)
        return proc

    def _raise_remote(self, code: int, stderr: str, what: str) -> None:
        if "no space left on device" in stderr.lower() or "disk quota exceeded" in stderr.lower():
            raise SshError(
                f"the disk of {self.name} is full ({what}): free space in ~/{REMOTE_CACHE} and /tmp on the board "
                f"(`ssh {self.name} df -h`)",
                "remote",
            )
        if code == _SSH_FAILED:
            raise SshError(f"connection to {self.name} ({self.where()}) lost while {what}: {_last_line(stderr)}", "lost")
        raise SshError(f"{what} on {self.name} failed (exit code {code}): {_last_line(stderr)}", "remote")

    # ------------------------------------------------------------------ running the runner

    def _python_expr(self) -> str:
        if self.python:
            return _sq(self.python)
        venv = shlex.quote(f"{self.cache_dir}/venv/bin/python")
        # The venv `edgebench doctor --provision` made wins over the system python3.
        return f'$(if [ -x {venv} ]; then echo {venv}; else echo python3; fi)'

    def _execute(self, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        with self._lock:
            self.connect()
            if self.lost_board():
                self.take_board()  # the connection dropped and took the lock with it: no measurement without it
            remote_spec = self.under_lock(dict(spec))
            files = dict(spec.get("files") or {})
            try:
                bundles = {key: bundle_for(Path(path)) for key, path in files.items()}
            except OSError as exc:
                return failure("missing_file", f"cannot read {exc.filename}: {exc.strerror}")
            runner = self._runner()
            if bundles:
                self._stage(list(bundles.values()))
            remote_spec["files"] = {key: f"{self.cache_dir}/models/{b.sha256}/{b.name}" for key, b in bundles.items()}
            limit = max(1, math.ceil(timeout))
            # A private scratch dir per run (mktemp -d is mode 0700), removed on every exit path.
            # `timeout` on the board stops a runner whose ssh client is gone, so nothing keeps running.
            script = f"""
py={self._python_expr()}
command -v "$py" >/dev/null 2>&1 || {{ echo "edgebench: no Python interpreter $py on $(hostname)" >&2; exit {_NO_PYTHON}; }}
d=$(mktemp -d "${{TMPDIR:-/tmp}}/edgebench.XXXXXXXX") || exit {_NO_SCRATCH}
trap 'rm -rf "$d"' EXIT
trap 'exit 143' HUP INT TERM PIPE
cp {shlex.quote(runner)} "$d/runner.py" && cd "$d" || exit {_NO_COPY}
if command -v timeout >/dev/null 2>&1; then timeout -k 5 {limit} "$py" runner.py -; else "$py" runner.py -; fi
"""
            started = time.monotonic()
            command = self._ssh("sh -c " + shlex.quote(script))
            try:
                proc = subprocess.run(command, input=json.dumps(remote_spec), capture_output=True, text=True,
                                      timeout=timeout + 10 + ALIVE_INTERVAL * ALIVE_COUNT)  # fmt: skip
            except subprocess.TimeoutExpired:
                raise SshError(
                    f"no answer from {self.name} ({self.where()}) for {timeout:.0f} s past the runner's time limit: "
                    "the link or the board hangs",
                    "lost",
                ) from None
            elapsed = time.monotonic() - started
        return self._result(proc, elapsed, timeout)

    def _result(self, proc: subprocess.CompletedProcess[str], elapsed: float, timeout: float) -> dict[str, Any]:
        code, shown = proc.returncode, f"python3 runner.py on {self.name}"
        doc = parse_runner_output(proc.stdout, proc.stderr, code, shown)
        if 128 < code < 160 and doc.get("status") == "crashed":
            # the remote shell reports a child killed by signal N as 128+N
            doc = parse_runner_output(proc.stdout, proc.stderr, -(code - 128), shown)
            doc["error"] += " (killed on the board: out of memory? see `dmesg` there)" if code == 137 else ""
        if doc.get("status") == "no_onnxruntime":
            raise SshError(f"{self.name}: {doc.get('error')}", "remote")
        if doc.get("status") != "crashed":
            return doc
        if code == _NO_PYTHON:
            raise SshError(
                f"{_last_line(proc.stderr)}: install python3 (>= 3.9) on the board, or pass --python PATH", "remote"
            )
        if code in (_NO_SCRATCH, _NO_COPY, _SSH_FAILED) or "no space left" in proc.stderr.lower():
            self._raise_remote(code, proc.stderr, "running the runner")
        if code in (124, 137) and elapsed >= timeout:
            return failure("timeout", f"the runner took longer than {timeout:.0f} s on {self.name} and was stopped; "
                                      "raise --timeout or lower --max-time")  # fmt: skip
        return doc

    def run(self, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        return self._execute(spec, timeout)

    def probe(self, timeout: float = 30.0) -> dict[str, Any]:
        return self._execute({"mode": "probe"}, timeout)


def usability_problem(machine: dict[str, Any], target_name: str = "T") -> str | None:
    """What stops the runner from measuring on a machine the probe described, with the fix; None if fine."""
    version = machine.get("python") or "0"
    try:
        parts = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        parts = (0, 0)
    exe = machine.get("python_executable") or "python3"
    if machine.get("onnxruntime_crashed"):  # provisioning the same release again would not help
        return f"{machine.get('onnxruntime_error')}; install instead: {machine.get('onnxruntime_fix')}"
    if parts < MIN_PYTHON:
        return f"Python {version} at {exe} is too old: the runner needs >= 3.9; install a newer python3 or pass --python"
    missing = [m for m in ("numpy", "onnxruntime") if not machine.get(m)]
    if missing:
        return (
            f"{' and '.join(missing)} missing for {exe}: run `edgebench doctor --target {target_name} --provision` "
            f"(a venv in ~/{REMOTE_CACHE}/venv) or `{exe} -m pip install {' '.join(missing)}`"
        )
    return None
