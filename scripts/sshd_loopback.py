#!/usr/bin/env python3
"""Start a throwaway OpenSSH server on 127.0.0.1 with its own config, host key and a Pi-like user.

    sudo python3 scripts/sshd_loopback.py start [--dir DIR] [--port N] [--user edgepi]
    edgebench doctor --target edgepi-loop --ssh-config DIR/ssh_config
    sudo python3 scripts/sshd_loopback.py stop --dir DIR

It writes DIR/ssh_config with a `Host edgepi-loop` alias (User, Port, IdentityFile, a private
known_hosts that already trusts the server's key, IdentitiesOnly). OpenSSH takes the home folder from
the account database, not $HOME, so pass that file with `-F` / `--ssh-config`.

Needs root (sshd must switch to the test user) and the openssh-server package. The test user gets a
password field of `*`: no password can log in, yet the account is not locked (sshd refuses a `!`
account even for key logins when UsePAM is off). The server is stopped by its PID, never by name.
Standard library only; tests/sshd.py imports this file.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
ALIAS = "edgepi-loop"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_user(user: str) -> pwd.struct_passwd:
    """Create the login user if absent; make its password field `*` (no password, not locked)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", user], check=True)
        entry = pwd.getpwnam(user)
    subprocess.run(["usermod", "-p", "*", user], check=True)
    return entry


def sftp_server() -> str:
    for path in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server"):
        if os.path.exists(path):
            return path
    return "internal-sftp"


class LoopbackSshd:
    """A real sshd on 127.0.0.1:port, configured entirely from files in `workdir`."""

    def __init__(self, workdir: Path, user: str = "edgepi", port: int | None = None, alias: str = ALIAS) -> None:
        self.dir = Path(workdir)
        self.user = user
        self.port = port or free_port()
        self.alias = alias
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.client_key = self.dir / "id_ed25519"
        self.authorized_keys = self.dir / "authorized_keys"
        self.known_hosts = self.dir / "known_hosts"
        self.sshd_config = self.dir / "sshd_config"
        self.ssh_config = self.dir / "ssh_config"
        self.pid_file = self.dir / "sshd.pid"
        self.log = self.dir / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    # -------------------------------------------------------------- files

    def prepare(self) -> None:
        """User, keys, server config and client config; no process is started."""
        self.dir.mkdir(parents=True, exist_ok=True)
        # sshd reads AuthorizedKeysFile as the login user, so the folder must be traversable by it.
        self.dir.chmod(0o755)
        ensure_user(self.user)
        for key in (self.host_key, self.client_key):
            if not key.exists():
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgebench-test", "-f", str(key)],
                               check=True)  # fmt: skip
        shutil.copyfile(self.client_key.with_suffix(".pub"), self.authorized_keys)
        self.authorized_keys.chmod(0o644)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation folder
        self.sshd_config.write_text(
            f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {self.pid_file}
AuthorizedKeysFile {self.authorized_keys}
AllowUsers {self.user}
StrictModes no
UsePAM no
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxSessions 64
MaxStartups 64:30:128
Subsystem sftp {sftp_server()}
LogLevel VERBOSE
"""
        )
        self.trust_host_key(self.known_hosts)
        self.write_client_config(self.ssh_config)

    def host_pattern(self) -> str:
        return f"[127.0.0.1]:{self.port}"

    def trust_host_key(self, known_hosts: Path) -> None:
        """Write a known_hosts file that holds exactly this server's host key."""
        key = self.host_key.with_suffix(".pub").read_text().split()
        known_hosts.write_text(f"{self.host_pattern()} {key[0]} {key[1]}\n")

    def write_client_config(self, path: Path, known_hosts: Path | None = None, identity: Path | None = None,
                            alias: str | None = None) -> Path:  # fmt: skip
        """An ssh_config with one Host alias for this server; tests vary the key or the known_hosts."""
        path.write_text(
            f"""Host {alias or self.alias}
    HostName 127.0.0.1
    Port {self.port}
    User {self.user}
    IdentityFile {identity or self.client_key}
    IdentitiesOnly yes
    UserKnownHostsFile {known_hosts or self.known_hosts}
    GlobalKnownHostsFile /dev/null
    IdentityAgent none
"""
        )
        return path

    # -------------------------------------------------------------- process

    def start(self, foreground_child: bool = True, timeout: float = 10.0) -> int:
        """Start sshd; as our child (-D, for fixtures) or as a daemon that outlives this script."""
        if not os.path.exists(SSHD):
            raise RuntimeError("sshd is not installed: apt-get install openssh-server")
        cmd = [SSHD, "-f", str(self.sshd_config), "-E", str(self.log)]
        if foreground_child:
            self.proc = subprocess.Popen([*cmd, "-D"], stdin=subprocess.DEVNULL)
        else:
            subprocess.run(cmd, check=True)
        if not wait_for_banner(self.port, self.proc, timeout, 0.05):
            self.stop()
            raise RuntimeError(f"sshd did not answer on 127.0.0.1:{self.port} within {timeout} s: {self.log_tail()}")
        return self.pid()

    def pid(self) -> int:
        if self.proc is not None:
            return self.proc.pid
        return int(self.pid_file.read_text().split()[0])

    def log_tail(self) -> str:
        return log_tail(self.log)

    def stop(self) -> None:
        """Stop the listener by PID, then the session processes it forked (by their parent PID)."""
        try:
            pid = self.pid()
        except (OSError, ValueError):
            return
        for p in [pid, *descendants(pid)]:
            try:
                os.kill(p, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            reap(self.proc)
            self.proc = None
        self.pid_file.unlink(missing_ok=True)


def children(pid: int) -> list[int]:
    """Direct children of `pid` from /proc (the standard library has no process tree)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        frontier = [c for p in frontier for c in children(p)]
        found += frontier
    return found


def wait_for_banner(port: int, proc: subprocess.Popen | None, timeout: float, step: float) -> bool:
    """Wait until an SSH server greets on 127.0.0.1:port; raise if `proc` (the server) exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"sshd exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if s.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        time.sleep(step)
    return False


def reap(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Wait for a signalled child to end; kill it if it does not within `grace` seconds."""
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def log_tail(path: Path) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-5:])
    except OSError:
        return "(no log)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--dir", type=Path, help="working folder (default: a new temp folder)")
    parser.add_argument("--port", type=int)
    parser.add_argument("--user", default="edgepi")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("error: run as root (sshd must switch to the test user)", file=sys.stderr)
        return 2
    if args.action == "stop":
        if not args.dir:
            parser.error("stop needs --dir")
        LoopbackSshd(args.dir, user=args.user, port=1).stop()
        return 0
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="edgebench-sshd-"))
    sshd = LoopbackSshd(workdir, user=args.user, port=args.port)
    sshd.prepare()
    pid = sshd.start(foreground_child=False)
    print(f"sshd pid {pid} on 127.0.0.1:{sshd.port} for user {sshd.user}")
    print(f"try:  ssh -F {sshd.ssh_config} {sshd.alias} uname -a")
    print(f"stop: {sys.executable} {__file__} stop --dir {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
