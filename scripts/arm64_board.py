#!/usr/bin/env python3
"""An emulated Raspberry-Pi-like arm64 board: Debian bookworm aarch64 under user-mode QEMU, with sshd.

    sudo python3 scripts/arm64_board.py build            # ~6 min once; then cached as a tarball
    sudo python3 scripts/arm64_board.py start --dir D    # prints the ssh alias and config; Ctrl-C stops
    sudo python3 scripts/arm64_board.py start --cpu cortex-a76   # a Pi 5's CPU instead of a Pi 4's

The board has python3, a venv in /home/pi/.cache/edgebench/venv with numpy and onnxruntime's aarch64
wheel from PyPI (so SshTarget uses it as on a provisioned Pi), a fake `vcgencmd` (temperature from
/etc/edgebench/fake-temp, throttle bits from /etc/edgebench/fake-throttled) and fake thermal and
cpufreq files under /sys, so the runner's telemetry path runs. Timings under emulation mean nothing.

The board presents a real Pi's CPU, so onnxruntime picks the kernels it would pick there: QEMU emulates
a Cortex-A72 (Pi 4, ARMv8.0: no dot-product `asimddp`, no LSE atomics) by default, or a Cortex-A76
(Pi 5, ARMv8.2 with asimddp), and /proc/cpuinfo is that Pi's. The CPU model reaches every process on
the board through QEMU_CPU in the environment: sshd is started with it and hands it to every session
(`SetEnv` in its config; sshd builds session environments from scratch), and processes inherit it.
The host's binfmt entry (flag F, shared with every other user of the machine) is left as it is. A
process that empties its environment (`env -i`) runs on QEMU's default `max` CPU: the runner records
the emulated model (`cpu_emulated` in its machine facts) from the same variable.

Facts this relies on (measured): binfmt_misc must be mounted and qemu-aarch64 enabled (with the F flag
that Debian's qemu-user-static registers, the interpreter works inside a chroot); `import onnxruntime`
segfaults under QEMU unless /proc/cpuinfo inside the chroot describes an ARM CPU, so a Pi's
cpuinfo is bind-mounted over it; onnxruntime <= 1.22 aborts on import ("Attempt to use DefaultLogger")
unless /sys/devices/system/cpu/possible and present exist; pip in the chroot needs the host's CA bundle.

Every mount is made inside a private mount namespace (`unshare --mount`) that belongs to the sshd
process: when it and its sessions are stopped (by PID), the kernel drops the mounts, so a crashed
test leaves nothing mounted on the host. Needs root, qemu-user-static, debootstrap, binfmt-support.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sshd_loopback import descendants, free_port, log_tail, reap, wait_for_banner  # noqa: E402 - a sibling script
# QEMU CPU model -> (the Pi whose CPU it is, its /proc/cpuinfo, its top clock in kHz)
CPUS = {
    "cortex-a72": ("Raspberry Pi 4", HERE / "pi4_cpuinfo.txt", 1500000),
    "cortex-a76": ("Raspberry Pi 5", HERE / "pi5_cpuinfo.txt", 2400000),
}
DEFAULT_CPU = "cortex-a72"
SUITE = "bookworm"
MIRROR = os.environ.get("EDGEBENCH_DEBIAN_MIRROR", "http://deb.debian.org/debian")
INCLUDE = "python3,python3-venv,openssh-server,openssh-sftp-server,ca-certificates"
USER, UID = "pi", 1000
VENV = f"/home/{USER}/.cache/edgebench/venv"
PACKAGES = ("numpy", "onnxruntime")
# Bump when the board's contents change, so a stale cached tarball is rebuilt.
BOARD_VERSION = 1


def default_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgebench" / f"arm64-board-v{BOARD_VERSION}.tar.gz"


def missing_requirements() -> str | None:
    """Why the board cannot run here, or None."""
    if os.geteuid() != 0:
        return "the emulated arm64 board needs root (chroot, mounts, sshd)"
    for tool in ("unshare", "chroot", "tar"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/usr/bin/qemu-aarch64-static").exists() and not Path("/usr/bin/qemu-aarch64").exists():
        return "qemu-user-static is not installed: apt-get install qemu-user-static binfmt-support debootstrap"
    return None


def ensure_binfmt() -> None:
    """Mount binfmt_misc and enable qemu-aarch64 (idempotent)."""
    status = Path("/proc/sys/fs/binfmt_misc/status")
    if not status.exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"], check=True)
    entry = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    if not entry.exists() or not entry.read_text().startswith("enabled"):
        if shutil.which("update-binfmts"):
            subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], check=True)
    if not entry.exists() or not entry.read_text().startswith("enabled"):
        raise RuntimeError("qemu-aarch64 is not registered with binfmt_misc: apt-get install qemu-user-static binfmt-support")


def _mounts(root: Path, cpu: str) -> str:
    """Shell commands that mount /proc and this CPU's cpuinfo and cpufreq files (in a private namespace)."""
    r, eb = shlex.quote(str(root)), shlex.quote(f"{root}/etc/edgebench/{cpu}")
    return (f"mount -t proc proc {r}/proc && mount --bind {eb}/cpuinfo {r}/proc/cpuinfo && "
            f"mount --bind {eb}/cpufreq {r}/sys/devices/system/cpu/cpu0/cpufreq")


def in_board(root: Path, command: str, cpu: str = DEFAULT_CPU, **kwargs: object) -> subprocess.CompletedProcess:
    """Run `sh -c command` inside the board's chroot on the emulated `cpu`, with /proc and its cpuinfo
    mounted privately."""
    env = {**dict(kwargs.pop("env", None) or os.environ), "QEMU_CPU": cpu}
    setup = f"{_mounts(root, cpu)} && exec chroot {shlex.quote(str(root))} /bin/sh -c {shlex.quote(command)}"
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", setup], env=env, **kwargs)


# ---------------------------------------------------------------------- building the root filesystem


def debootstrap(root: Path) -> None:
    if (root / "usr/bin/python3").exists() and not (root / "debootstrap").exists():
        return  # a finished rootfs (second stage done) is reused
    subprocess.run(["debootstrap", "--arch=arm64", "--variant=minbase", f"--include={INCLUDE}", "--foreign",
                    SUITE, str(root), MIRROR], check=True)  # fmt: skip
    subprocess.run(["chroot", str(root), "/debootstrap/debootstrap", "--second-stage"], check=True)


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def install_fakes(root: Path) -> None:
    """Each CPU's cpuinfo and clock, fake Pi sensors and the sshd config: cheap, so redone on every start."""
    eb = root / "etc/edgebench"
    eb.mkdir(parents=True, exist_ok=True)
    for cpu, (_, cpuinfo, khz) in CPUS.items():
        (eb / cpu).mkdir(exist_ok=True)
        shutil.copyfile(cpuinfo, eb / cpu / "cpuinfo")
        _write(eb / cpu / "cpufreq/scaling_governor", "ondemand\n")
        _write(eb / cpu / "cpufreq/scaling_cur_freq", f"{khz}\n")
        _write(eb / cpu / "cpufreq/cpuinfo_max_freq", f"{khz}\n")
    _write(eb / "fake-temp", "48.3\n")
    _write(eb / "fake-throttled", "0x50000\n")
    _write(root / "usr/local/bin/vcgencmd", """#!/bin/sh
# Fake Raspberry Pi vcgencmd for the emulated board (edgebench tests); values come from /etc/edgebench.
# Each call is logged after its answer, so a test can act right after the runner read its telemetry.
case "$1" in
  measure_temp) echo "temp=$(cat /etc/edgebench/fake-temp)'C" ;;
  get_throttled) echo "throttled=$(cat /etc/edgebench/fake-throttled)" ;;
  *) echo "Command not registered" >&2; exit 1 ;;
esac
echo "$1" >> /tmp/edgebench-vcgencmd.calls 2>/dev/null
""", 0o755)  # fmt: skip
    # /sys is not mounted in the board, so these plain files are what the runner reads.
    _write(root / "sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
    _write(root / "sys/class/thermal/thermal_zone0/temp", "48312\n")
    cpus = root / "sys/devices/system/cpu"
    (cpus / "cpu0/cpufreq").mkdir(parents=True, exist_ok=True)  # the mount point of each CPU's clock files
    for name in ("possible", "present", "online"):  # the cpuinfo library in onnxruntime reads these
        _write(cpus / name, "0-3\n")
    _write(eb / "sshd_config", f"""ListenAddress 127.0.0.1
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/edgebench-sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
AllowUsers {USER}
StrictModes no
UsePAM no
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
Subsystem sftp /usr/lib/openssh/sftp-server
""")  # fmt: skip


def customize(root: Path) -> None:
    """User pi, the fakes above, and the venv with numpy + onnxruntime (the slow part, cached)."""
    install_fakes(root)
    eb = root / "etc/edgebench"
    passwd = (root / "etc/passwd").read_text()
    if not any(line.startswith(f"{USER}:") for line in passwd.splitlines()):
        # Edited directly: minbase has no useradd. `*`: no password can log in, and the account is not locked.
        with open(root / "etc/passwd", "a") as f:
            f.write(f"{USER}:x:{UID}:{UID}:Raspberry Pi user:/home/{USER}:/bin/bash\n")
        with open(root / "etc/group", "a") as f:
            f.write(f"{USER}:x:{UID}:\n")
        with open(root / "etc/shadow", "a") as f:
            f.write(f"{USER}:*:19800:0:99999:7:::\n")
    (root / f"home/{USER}/.ssh").mkdir(parents=True, exist_ok=True)
    (root / "run/sshd").mkdir(parents=True, exist_ok=True)
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    ca = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    shutil.copyfile(ca, eb / "host-ca.crt")
    # A clean environment: the host's PIP_*/SSL_* variables name host paths that mean other files here.
    host_ca = "/etc/edgebench/host-ca.crt"
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
           "PIP_CERT": host_ca, "SSL_CERT_FILE": host_ca, "REQUESTS_CA_BUNDLE": host_ca,
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_DEFAULT_TIMEOUT": "180", "PIP_NO_INPUT": "1"}
    for key in ("PIP_INDEX_URL", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "NO_PROXY", "no_proxy"):
        if key in os.environ:
            env[key] = os.environ[key]
    pip = f"{VENV}/bin/python -m pip install --no-cache-dir"
    in_board(root, f"set -e; [ -x {VENV}/bin/python ] || python3 -m venv {VENV}; {pip} {' '.join(PACKAGES)}; "
                   f"chown -R {UID}:{UID} /home/{USER}", check=True, env=env)  # fmt: skip
    check = in_board(root, f"{VENV}/bin/python -c 'import onnxruntime, numpy, platform; "
                           "print(platform.machine(), onnxruntime.__version__, numpy.__version__)'",
                     capture_output=True, text=True)  # fmt: skip
    if check.returncode != 0:
        raise RuntimeError(f"onnxruntime does not import on the board: {check.stderr.strip()[-500:]}")
    print("board:", check.stdout.strip())


def build(cache: Path, rootfs: Path | None = None) -> Path:
    """Make the cached board tarball (debootstrap + customize); returns its path."""
    ensure_binfmt()
    work = None if rootfs else Path(tempfile.mkdtemp(prefix="edgebench-board-build-"))
    root = rootfs or work / "rootfs"
    try:
        debootstrap(root)
        customize(root)
        cache.parent.mkdir(parents=True, exist_ok=True)
        part = cache.with_name(cache.name + ".part")
        subprocess.run(["tar", "--numeric-owner", "--one-file-system", "-czf", str(part), "-C", str(root), "."],
                       check=True)  # fmt: skip
        part.replace(cache)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return cache


# ---------------------------------------------------------------------- running it


class Board:
    """A running board: its root filesystem under `workdir/rootfs` and sshd on 127.0.0.1:port, on an
    emulated `cpu` (a QEMU CPU model of CPUS). `root` shares another board's filesystem: a second sshd,
    in its own mount namespace, presents another CPU (a Pi 5 beside a Pi 4) without a second unpacking."""

    def __init__(self, workdir: Path, cache: Path | None = None, cpu: str = DEFAULT_CPU,
                 root: Path | None = None) -> None:  # fmt: skip
        if cpu not in CPUS:
            raise ValueError(f"unknown board CPU {cpu!r}: choose one of {', '.join(CPUS)}")
        self.cpu = cpu
        self.alias = "pi-emu" if cpu == DEFAULT_CPU else f"pi-emu-{cpu}"
        self.dir = Path(workdir)
        self.cache = cache or default_cache()
        self.shared_root = root is not None
        self.root = Path(root) if root is not None else self.dir / "rootfs"
        self.port = free_port()
        self.client_key = self.dir / "id_ed25519"
        self.known_hosts = self.dir / "known_hosts"
        self.ssh_config = self.dir / "ssh_config"
        self.log = self.dir / "sshd.log"
        self.proc: subprocess.Popen | None = None

    def prepare(self) -> None:
        """Unpack the cached rootfs (building it first if absent) and install a fresh login key."""
        problem = missing_requirements()
        if problem:
            raise RuntimeError(problem)
        ensure_binfmt()
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.shared_root:
            if not self.cache.exists():
                build(self.cache)
            self.root.mkdir(parents=True, exist_ok=True)
            subprocess.run(["tar", "--numeric-owner", "-xzf", str(self.cache), "-C", str(self.root)], check=True)
            install_fakes(self.root)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgebench-board", "-f",
                        str(self.client_key)], check=True)  # fmt: skip
        auth = self.root / f"home/{USER}/.ssh/authorized_keys"
        with open(auth, "a") as f:  # appended: boards sharing a filesystem each log in with their own key
            f.write(self.client_key.with_suffix(".pub").read_text())
        os.chown(auth, UID, UID)
        host_key = (self.root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_key[0]} {host_key[1]}\n")
        self.ssh_config.write_text(f"""Host {self.alias}
    HostName 127.0.0.1
    Port {self.port}
    User {USER}
    IdentityFile {self.client_key}
    IdentitiesOnly yes
    UserKnownHostsFile {self.known_hosts}
    GlobalKnownHostsFile /dev/null
    IdentityAgent none
""")  # fmt: skip

    def start(self, timeout: float = 60.0) -> int:
        # QEMU_CPU twice: in sshd's own environment (sshd runs under QEMU too) and, by SetEnv, in every
        # session's, which sshd builds from scratch.
        setup = (f"{_mounts(self.root, self.cpu)} && exec chroot {shlex.quote(str(self.root))} /usr/sbin/sshd -D -e "
                 f"-f /etc/edgebench/sshd_config -o Port={self.port} -o 'SetEnv QEMU_CPU={self.cpu}'")
        with open(self.log, "wb") as log:
            # unshare and sh exec into sshd, so this PID is sshd's own.
            self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", setup],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env={**os.environ, "QEMU_CPU": self.cpu})  # fmt: skip
        try:
            ready = wait_for_banner(self.port, self.proc, timeout, 0.2)
        except RuntimeError as exc:
            raise RuntimeError(f"the board's {exc}: {self.log_tail()}") from None
        if not ready:
            self.stop()
            raise RuntimeError(f"the board's sshd did not answer on 127.0.0.1:{self.port} in {timeout} s: {self.log_tail()}")
        return self.proc.pid

    def set_temperature(self, celsius: float) -> None:
        (self.root / "etc/edgebench/fake-temp").write_text(f"{celsius:.1f}\n")

    def log_tail(self) -> str:
        return log_tail(self.log)

    def stop(self) -> None:
        """Stop sshd and every process it started, by PID; the private mounts go with them."""
        if self.proc is None:
            return
        for pid in [*descendants(self.proc.pid), self.proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL if pid != self.proc.pid else signal.SIGTERM)
            except ProcessLookupError:
                pass
        reap(self.proc)
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["build", "start"])
    parser.add_argument("--cache", type=Path, default=None, help=f"board tarball (default {default_cache()})")
    parser.add_argument("--rootfs", type=Path, help="build: reuse (or create) this root filesystem folder")
    parser.add_argument("--dir", type=Path, help="start: working folder (default: a new temp folder)")
    parser.add_argument("--cpu", choices=sorted(CPUS), default=DEFAULT_CPU,
                        help=f"start: the emulated CPU (default {DEFAULT_CPU}, a Pi 4's; cortex-a76 is a Pi 5's)")
    args = parser.parse_args(argv)
    problem = missing_requirements()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    cache = args.cache or default_cache()
    if args.action == "build":
        t0 = time.monotonic()
        print(f"built {build(cache, args.rootfs)} in {time.monotonic() - t0:.0f} s")
        return 0
    board = Board(args.dir or Path(tempfile.mkdtemp(prefix="edgebench-board-")), cache, cpu=args.cpu)
    board.prepare()
    pid = board.start()
    print(f"board sshd pid {pid} on 127.0.0.1:{board.port}, a {CPUS[args.cpu][0]}'s CPU ({args.cpu}); "
          f"try: ssh -F {board.ssh_config} {board.alias} uname -m")
    print("Ctrl-C stops it")
    try:
        board.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        board.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
