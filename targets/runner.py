#!/usr/bin/env python3
"""edgebench standalone runner: measure one ONNX model in this process and print one JSON document.

This file is copied as-is to every target (the desktop, a Raspberry Pi over SSH). It needs only the
standard library, numpy and onnxruntime (psutil is used when present), imports nothing of edgebench,
and runs on Python >= 3.9, so a local and a remote number come from the same code.

Usage:  python3 runner.py SPEC.json      (or `-` to read the spec from stdin)

The spec (JSON object; every key optional except where noted):
  mode            "bench" (default), "paired", "evaluate" (accuracy of each of "models" on files.data)
                  or "probe" (machine facts only; needs no model, no numpy)
  files           {key: path}; "model" (bench) or the keys named by "models" (paired, evaluate); "data" for an
                  .npz whose arrays are named after the inputs (or `x` for a one-input model) plus labels `y`;
                  any other key names a .npy file that "values" refers to
  batch           batch size for symbolic first axes (default 1)
  shapes          {input_name: [d0, d1, ...]} overrides for inputs with symbolic dimensions
  values          {input_name: {"constant": number} | {"file": files_key} | {"random": true}}
  inputs          {"seed": 0}: seed of the random values (float tensors, or inputs given "random")
  intra_op_threads, inter_op_threads   onnxruntime thread counts (0/None: onnxruntime's default)
  providers       [{"name": "OpenVINOExecutionProvider", "options": {"device_type": "CPU"}}, ...] in priority
                  order (default CPU only); bench reports the session's providers and, when one other than
                  CPU is asked, each node's provider in a profiled first call ("placement": nodes per
                  provider, providers used, the nodes that fell back from the first one)
  cpu_affinity    [core, ...] pin this process to those cores
  warmup          {"min_iterations": 10, "min_time_s": 0.2}
  min_iterations, min_time_s, max_time_s, max_iterations    the timed loop's stopping rule
  accuracy        true: run files.data's rows through the model afterwards and count a confusion matrix
                  against its `y` (skipped when the file has no `y`)
  models, block_size, n_blocks, drop_per_block   paired mode: alternate models in blocks of calls
  block_time_s    paired mode: a block of a slow model holds fewer calls, so that it lasts about this long
  lock            mode "lock": hold an exclusive flock on the board's lock file (path, default
                  ~/.cache/edgebench/board.lock) for as long as stdin stays open; "holder" (who we are) is
                  written into the file, "timeout_s" bounds the wait. Prints one JSON line per holder seen
                  while waiting ({"status": "waiting", "holder": ...}), then {"status": "ok", ...} once held
                  (or {"status": "lock_timeout"}); with `-` the spec is the first line of stdin
  streams         bench mode: N (or "auto", one per core) concurrent streams after the single-stream loop
                  (see streams_phase); stream_sessions "separate" (default) or "shared", stream_threads the
                  intra-op threads of each stream (default: intra_op_threads, else cores // N)

The output's last line is the JSON document; exit code 0 when status is "ok", 3 when the runner
reports a failure of its own (status is a short error class, error the message).
"""

import gc
import json
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import time

# ---------------------------------------------------------------- the protocol (the harness imports these)
#
# RUNNER_VERSION changes whenever the spec or the document changes meaning; the harness refuses a runner of
# another version (a stale copy on a board) rather than misread it.
# 2: the spec's providers; the bench document's providers and placement
# 3: bench mode's streams phase (spec streams, stream_sessions, stream_threads; the document's stream_*)
# 4: lock mode (one measurement per board at a time); every document's time_start/time_end
RUNNER_VERSION = 4
REPORTED_ERROR_EXIT = 3  # exit code when the document describes a failure of the measurement (status != ok)

# The statuses a runner document carries. A failure that depends on the model, the spec or the software
# (not on this process's luck) is permanent: another process would fail the same way.
STATUS_OK = "ok"
PERMANENT_STATUSES = frozenset(("bad_spec", "missing_file", "no_onnxruntime", "bad_model", "bad_shape",
                                "bad_input", "bad_data", "run_failed", "bad_provider"))
STATUSES = frozenset((STATUS_OK, "out_of_memory")) | PERMANENT_STATUSES

# Spec defaults, one set for the runner and the harness (RunSpec and the flags take theirs from here).
DEFAULTS = {
    "batch": 1,
    "warmup": {"min_iterations": 10, "min_time_s": 0.2, "max_time_s": 5.0, "max_iterations": 10000},
    "min_iterations": 20,
    "min_time_s": 1.0,
    "max_time_s": 30.0,
    # 10,000 calls pin a median to well under 1%; more only bloats samples.csv for microsecond models
    "max_iterations": 10000,
    "block_size": 40,
    "drop_per_block": 5,
    "n_blocks": 6,
    "paired_max_time_s": 60.0,
}

_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(bool)": "bool",
}

# `vcgencmd get_throttled` bits (Raspberry Pi firmware documentation).
_THROTTLE_BITS = {
    0: "under_voltage",
    1: "freq_capped",
    2: "throttled",
    3: "soft_temp_limit",
    16: "under_voltage_since_boot",
    17: "freq_capped_since_boot",
    18: "throttled_since_boot",
    19: "soft_temp_limit_since_boot",
}


class RunnerError(Exception):
    """A failure the runner reports as data: `status` is a short class, the message says what to do."""

    def __init__(self, status, message):
        Exception.__init__(self, message)
        self.status = status


# ---------------------------------------------------------------- machine facts and telemetry


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _command(args, timeout=3.0):
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


# Arm Ltd's cores by /proc/cpuinfo "CPU part" (implementer 0x41): what lscpu names them. An arm64 kernel
# prints no "model name", so the part number is how a Raspberry Pi says which core it has.
_ARM_PARTS = {
    0xD03: "Cortex-A53", 0xD04: "Cortex-A35", 0xD05: "Cortex-A55", 0xD07: "Cortex-A57", 0xD08: "Cortex-A72",
    0xD09: "Cortex-A73", 0xD0A: "Cortex-A75", 0xD0B: "Cortex-A76", 0xD0C: "Neoverse-N1", 0xD0D: "Cortex-A77",
    0xD40: "Neoverse-V1", 0xD41: "Cortex-A78", 0xD44: "Cortex-X1", 0xD46: "Cortex-A510", 0xD47: "Cortex-A710",
    0xD48: "Cortex-X2", 0xD49: "Neoverse-N2", 0xD4F: "Neoverse-V2", 0xD80: "Cortex-A520", 0xD81: "Cortex-A720",
}


def _cpuinfo_fields():
    """The first value of each /proc/cpuinfo key (lower-case keys)."""
    fields = {}
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    return fields


def _arm_part_name(fields):
    try:
        if int(fields.get("cpu implementer", ""), 16) == 0x41:
            return _ARM_PARTS.get(int(fields.get("cpu part", ""), 16))
    except ValueError:
        pass
    return None


def _cpu_model():
    if platform.machine().lower() in ("x86_64", "amd64"):
        try:
            brand = _x86_brand()
            if brand:
                return brand
        except (OSError, ValueError, AttributeError, TypeError):
            pass
    fields = _cpuinfo_fields()
    if fields.get("model name"):
        return fields["model name"]
    part = _arm_part_name(fields)
    if part:
        return part
    for key in ("hardware", "model", "cpu part"):
        if fields.get(key):
            return fields[key]
    return platform.processor() or None


def _board_model():
    """A Pi names itself in the device tree, and its kernel prints the same "Model" line in /proc/cpuinfo
    (on x86 that key is a number)."""
    model = (_read("/proc/device-tree/model") or "").rstrip("\x00")
    if not model and platform.machine().lower().startswith(("aarch64", "arm")):
        model = _cpuinfo_fields().get("model")
    return model or None


def _cpu_emulated():
    """The CPU model user-mode QEMU emulates for this process (QEMU_CPU is how it is told), or None."""
    cpu = os.environ.get("QEMU_CPU")
    return "qemu " + cpu if cpu else None


def _ram_mb():
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    return None


def _os_name():
    for line in (_read("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.platform()


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


# The instruction-set features that decide onnxruntime's integer (INT8) kernels: on x86 without
# VNNI the U8S8 kernels multiply in 16 bits and can saturate; ARM's dot-product (asimddp) and i8mm
# kernels are others again. Names follow Linux's /proc/cpuinfo.
_X86_FEATURES = (  # (name, cpuid leaf, subleaf, register index eax=0 ebx=1 ecx=2 edx=3, bit)
    ("fma", 1, 0, 2, 12),
    ("avx", 1, 0, 2, 28),
    ("avx2", 7, 0, 1, 5),
    ("avx512f", 7, 0, 1, 16),
    ("avx512bw", 7, 0, 1, 30),
    ("avx512vl", 7, 0, 1, 31),
    ("avx512_vnni", 7, 0, 2, 11),
    ("amx_bf16", 7, 0, 3, 22),
    ("amx_tile", 7, 0, 3, 24),
    ("amx_int8", 7, 0, 3, 25),
    ("avx_vnni", 7, 1, 0, 4),
    ("avx512_bf16", 7, 1, 0, 5),
)
# XCR0 state bits the OS must enable before a feature family may be used (as onnxruntime checks)
_XCR0_NEEDS = {"avx": 0x6, "fma": 0x6, "avx2": 0x6, "avx_vnni": 0x6, "avx512": 0xE6, "amx": 0x60000}
_ARM_HWCAP = {"asimd": 1, "fphp": 9, "asimdhp": 10, "asimddp": 20, "sve": 22}  # AT_HWCAP bits
_ARM_HWCAP2 = {"sve2": 1, "i8mm": 13, "bf16": 14}  # AT_HWCAP2 bits


def _x86_cpuid():
    """cpuid(leaf, subleaf) and xgetbv() through a few bytes of machine code (x86-64 System V ABI).

    cpuid, not /proc/cpuinfo: under an emulator (QEMU's -cpu Haswell) the kernel's cpuinfo describes
    the host, while cpuid answers what the program, and onnxruntime, will see."""
    import ctypes
    import mmap

    code = bytes([
        0x53, 0x89, 0xF8, 0x89, 0xF1, 0x49, 0x89, 0xD0,  # push rbx; mov eax,edi; mov ecx,esi; mov r8,rdx
        0x0F, 0xA2,  # cpuid
        0x41, 0x89, 0x00, 0x41, 0x89, 0x58, 0x04, 0x41, 0x89, 0x48, 0x08, 0x41, 0x89, 0x50, 0x0C,  # store eax..edx
        0x5B, 0xC3,  # pop rbx; ret
        0x89, 0xF9, 0x0F, 0x01, 0xD0, 0x48, 0xC1, 0xE2, 0x20, 0x48, 0x09, 0xD0, 0xC3,  # xgetbv(edi) -> rax
    ])
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    base = ctypes.addressof(ctypes.c_char.from_buffer(page))
    raw = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))(base)
    xgetbv = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_uint32)(base + 27)

    def cpuid(leaf, subleaf=0):
        out = (ctypes.c_uint32 * 4)()
        raw(leaf, subleaf, out)
        return tuple(out)

    return cpuid, xgetbv, page  # the page must outlive the calls


def _x86_brand():
    """The CPU's own name from cpuid (an emulated CPU names itself; /proc/cpuinfo names the host)."""
    import struct

    cpuid, _, _page = _x86_cpuid()
    if cpuid(0x80000000)[0] < 0x80000004:
        return None
    raw = b"".join(struct.pack("<4I", *cpuid(leaf)) for leaf in (0x80000002, 0x80000003, 0x80000004))
    return raw.split(b"\0", 1)[0].decode("ascii", "replace").strip() or None


def _x86_features():
    cpuid, xgetbv, _page = _x86_cpuid()
    max_leaf = cpuid(0)[0]
    max_sub7 = cpuid(7, 0)[0] if max_leaf >= 7 else 0
    osxsave = bool(cpuid(1)[2] >> 27 & 1)
    xcr0 = xgetbv(0) if osxsave else 0
    found = []
    for name, leaf, sub, reg, bit in _X86_FEATURES:
        if leaf > max_leaf or (leaf == 7 and sub > max_sub7):
            continue
        if not cpuid(leaf, sub)[reg] >> bit & 1:
            continue
        family = "avx512" if name.startswith("avx512") else "amx" if name.startswith("amx") else name
        need = _XCR0_NEEDS.get(family, 0)
        if xcr0 & need == need:
            found.append(name)
    return found


def _arm_features():
    import ctypes

    getauxval = ctypes.CDLL(None).getauxval
    getauxval.restype = ctypes.c_ulong
    getauxval.argtypes = [ctypes.c_ulong]
    hwcap, hwcap2 = getauxval(16), getauxval(26)  # AT_HWCAP, AT_HWCAP2
    found = [n for n, bit in _ARM_HWCAP.items() if hwcap >> bit & 1]
    return found + [n for n, bit in _ARM_HWCAP2.items() if hwcap2 >> bit & 1]


def _cpuinfo_features():
    wanted = set(n for n, *_ in _X86_FEATURES) | set(_ARM_HWCAP) | set(_ARM_HWCAP2)
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return [f for f in value.split() if f in wanted]
    return None


def cpu_features():
    """(features, source): the integer-kernel features of the CPU this process runs on, and how they
    were read: cpuid / hwcap (what the process itself sees) or /proc/cpuinfo (the kernel's view)."""
    machine = platform.machine().lower()
    try:
        if machine in ("x86_64", "amd64"):
            return sorted(_x86_features()), "cpuid"
        if machine in ("aarch64", "arm64") and sys.platform.startswith("linux"):
            return sorted(_arm_features()), "hwcap"
    except (OSError, ValueError, AttributeError, TypeError):
        pass  # W^X policies can refuse an executable page: fall back to the kernel's view
    found = _cpuinfo_features()
    return (sorted(found), "/proc/cpuinfo") if found is not None else (None, None)


def temperature_c():
    """The SoC/CPU temperature: vcgencmd on a Pi, else the hottest /sys/class/thermal zone."""
    out = _command(["vcgencmd", "measure_temp"])
    if out and "temp=" in out:
        try:
            return float(out.split("=", 1)[1].split("'")[0])
        except ValueError:
            pass
    temps = []
    base = "/sys/class/thermal"
    try:
        zones = sorted(os.listdir(base))
    except OSError:
        zones = []
    for zone in zones:
        raw = _read(os.path.join(base, zone, "temp"))
        if raw and raw.lstrip("-").isdigit():
            temps.append(int(raw) / 1000.0)
    return max(temps) if temps else None


def throttle_state():
    """Raspberry Pi throttle flags now and since boot, or None where vcgencmd is absent."""
    out = _command(["vcgencmd", "get_throttled"])
    if not out or "=" not in out:
        return None
    try:
        value = int(out.split("=", 1)[1], 16)
    except ValueError:
        return None
    flags = [name for bit, name in sorted(_THROTTLE_BITS.items()) if value & (1 << bit)]
    return {"raw": hex(value), "flags": flags, "throttled_now": bool(value & 0xF)}


def telemetry():
    """What can change during a measurement: temperature, throttling, clock, load."""
    try:
        load = os.getloadavg()
    except OSError:
        load = (None, None, None)
    freq = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    return {
        "time_unix": time.time(),
        "temp_c": temperature_c(),
        "throttle": throttle_state(),
        "cpu_freq_mhz": int(freq) / 1000.0 if freq and freq.isdigit() else None,
        "load_avg_1m": load[0],
    }


# ---------------------------------------------------------------- importing onnxruntime
#
# An onnxruntime build can kill Python on import: onnxruntime 1.21.0's aarch64 wheel dies with SIGILL on a
# Raspberry Pi 4 (Cortex-A72, ARMv8.0), and no `except` catches a signal. The probe (doctor, and every
# SshTarget.open) imports it in a forked child, so the crash becomes a fact with its fix; the other modes
# import in-process behind a mark on stderr, so the harness can tell a crash on import from one in a model.

# the signals of a fault in the process itself (a SIGKILL or SIGTERM during the import is someone else's doing)
CRASH_SIGNALS = {4: "SIGILL (illegal instruction)", 6: "SIGABRT (aborted)", 7: "SIGBUS (bus error)",
                 11: "SIGSEGV (segmentation fault)"}
IMPORT_MARK = "edgebench-runner: importing onnxruntime"
IMPORTED_MARK = "edgebench-runner: onnxruntime imported"
# Releases measured to die on import on some CPUs: the release that imports there, and which CPUs.
# 1.21.0 vs 1.21.1 (and 1.20.1, 1.22.0) measured under QEMU's cortex-a72 on the emulated board.
_ORT_CRASHES = {"1.21.0": ("1.21.1", "on ARMv8.0 CPUs such as a Raspberry Pi 4's Cortex-A72")}
_ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")


def onnxruntime_distribution():
    """(pip name, version) of the installed onnxruntime, read without importing it; (None, None) if absent."""
    try:
        from importlib import metadata
    except ImportError:
        return None, None
    for name in _ORT_DISTRIBUTIONS:
        try:
            return name, metadata.version(name)
        except Exception:  # noqa: BLE001 - PackageNotFoundError, or a broken install's metadata
            continue
    return None, None


def onnxruntime_crash(signum, python, where, package=None, version=None):
    """(what it means, what to install instead) when `import onnxruntime` killed `python` with `signum`."""
    package = package or "onnxruntime"
    signame = CRASH_SIGNALS.get(signum, "signal %d" % signum)
    build = "%s %s" % (package, version) if version else package
    if signum == 4:
        meaning = "this build (%s) uses CPU instructions this CPU lacks" % build
    else:
        meaning = ("this build (%s) cannot run on this machine (it crashed detecting the CPU or loading a library)"
                   % build)
    what = "`import onnxruntime` killed %s with %s on %s: %s" % (python, signame, where, meaning)
    known = _ORT_CRASHES.get(version) if package == "onnxruntime" else None
    if known:
        fix = "%s -m pip install onnxruntime==%s   # %s dies on import %s; %s imports there" % (
            python, known[0], version, known[1], known[0])
    else:
        older = "'%s<%s'" % (package, version) if version else package
        fix = ("%s -m pip install %s   # a release built for this CPU; check it with: %s -c 'import onnxruntime'"
               % (python, older, python))
    return what, fix


def _onnxruntime_in_child():
    """{"version", "providers"} or {"error"} from importing onnxruntime in a forked child, or {"signal": N}
    when the import killed it; None where there is no fork. Forked, not a new interpreter: the child runs
    on the same (possibly emulated) CPU, and skips an interpreter start."""
    if not hasattr(os, "fork"):
        return None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.close(read_end)
            try:
                import onnxruntime

                out = {"version": onnxruntime.__version__, "providers": onnxruntime.get_available_providers()}
            except Exception as exc:  # noqa: BLE001 - a broken install is a fact to report
                out = {"error": "%s: %s" % (type(exc).__name__, exc)}
            with os.fdopen(write_end, "w") as pipe:
                pipe.write(json.dumps(out))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status)}
    try:
        return json.loads(text)
    except ValueError:
        return {"error": "importing onnxruntime ended the child with status %d" % os.WEXITSTATUS(status)}


def _onnxruntime_facts(info, isolated):
    """Fill info's onnxruntime, providers and (on failure) onnxruntime_error/_fix/_crashed."""
    found = _onnxruntime_in_child() if isolated else None
    if found is None:
        package, version = onnxruntime_distribution()
        # what the harness needs to explain a crash here: package, version, host, interpreter (last: may hold spaces)
        sys.stderr.write("%s %s %s %s %s\n" % (IMPORT_MARK, package or "-", version or "-", socket.gethostname(),
                                                sys.executable))
        sys.stderr.flush()
        try:
            import onnxruntime

            found = {"version": onnxruntime.__version__, "providers": onnxruntime.get_available_providers()}
        except Exception as exc:  # noqa: BLE001 - a broken install is a fact to report, not a crash
            found = {"error": "%s: %s" % (type(exc).__name__, exc)}
        sys.stderr.write(IMPORTED_MARK + "\n")
        sys.stderr.flush()
    if "signal" in found and found["signal"] not in CRASH_SIGNALS:
        info["onnxruntime_error"] = "importing onnxruntime was stopped by signal %d" % found["signal"]
    elif "signal" in found:
        package, version = onnxruntime_distribution()
        what, fix = onnxruntime_crash(found["signal"], sys.executable, socket.gethostname(), package, version)
        info["onnxruntime_error"], info["onnxruntime_fix"] = what, fix
        info["onnxruntime_crashed"] = CRASH_SIGNALS[found["signal"]]
    elif "error" in found:
        info["onnxruntime_error"] = found["error"]
    else:
        info["onnxruntime"], info["providers"] = found["version"], found["providers"]


def machine_info(isolate_onnxruntime=False):
    """Facts about this machine and its software; never fails for a missing (or crashing) package.
    isolate_onnxruntime: import onnxruntime in a child process (the probe), so a crash is reported."""
    info = {
        "hostname": socket.gethostname(),
        "arch": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_emulated": _cpu_emulated(),
        "cores": _cores(),
        "cpu_count": os.cpu_count(),
        "ram_mb": _ram_mb(),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "board_model": _board_model(),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cpu_max_freq_mhz": None,
        "numpy": None,
        "onnxruntime": None,
        "providers": None,
        "psutil": None,
    }
    info["cpu_features"], info["cpu_features_source"] = cpu_features()
    fmax = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if fmax and fmax.isdigit():
        info["cpu_max_freq_mhz"] = int(fmax) / 1000.0
    # onnxruntime first: the probe forks for it, best before numpy starts its threads
    _onnxruntime_facts(info, isolate_onnxruntime)
    for module in ("numpy", "psutil"):
        try:
            info[module] = __import__(module).__version__
        except Exception as exc:  # noqa: BLE001 - a broken install is a fact to report, not a crash
            info[module] = None
            info[module + "_error"] = "%s: %s" % (type(exc).__name__, exc)
    return info


# ---------------------------------------------------------------- memory


def rss_mb():
    try:
        import psutil

        return psutil.Process().memory_info().rss / 1048576.0
    except ImportError:
        statm = _read("/proc/self/statm")
        if statm:
            return int(statm.split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1048576.0
    return None


def peak_rss_mb():
    """This process image's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss across execve,
    so a runner started by a 1 GB parent (torch loaded) reported 1,153 MB for a 5 MB model."""
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1048576.0 if sys.platform == "darwin" else peak / 1024.0


# ---------------------------------------------------------------- the model


def _need_runtime():
    try:
        import numpy  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise RunnerError(
            "no_onnxruntime",
            "%s on %s (%s): install numpy and onnxruntime for this Python "
            "(`%s -m pip install numpy onnxruntime`) or run `edgebench doctor --provision`"
            % (exc, socket.gethostname(), sys.executable, sys.executable),
        )


def _file(spec, key):
    files = spec.get("files") or {}
    path = files.get(key)
    if not path:
        raise RunnerError("bad_spec", "the spec names no file %r" % key)
    if not os.path.isfile(path):
        raise RunnerError("missing_file", "%s: no such file on %s" % (path, socket.gethostname()))
    return path


def _ort_message(exc):
    """onnxruntime's first message line without its C++ source location and signature."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"/\S+\.(?:cc|h|cpp):\d+ (?:[^ (]+ )?(?:\S+::)+\S*\(.*?\)(?: const)? (?=[A-Z])", "", text)


def session_providers(spec, ort):
    """(names, options) in priority order: the spec's providers, checked against what this onnxruntime offers.

    onnxruntime itself only warns about a name it does not offer and drops it, so an OpenVINO figure
    would silently be a CPU figure; here an unknown name is an error that lists what is offered."""
    asked = spec.get("providers") or []
    if not asked:
        return ["CPUExecutionProvider"], [{}]
    offered = ort.get_available_providers()
    names, options = [], []
    for entry in asked:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not name:
            raise RunnerError("bad_spec", "each of the spec's providers needs a name, got %r" % (entry,))
        if name not in offered:
            raise RunnerError("bad_provider", "%s is not offered by onnxruntime %s at %s on %s; it offers %s: "
                              "choose one of those, or install the onnxruntime package that has it (e.g. "
                              "onnxruntime-openvino) in another venv and pass --python" % (
                                  name, ort.__version__, sys.executable, socket.gethostname(), ", ".join(offered)))
        names.append(name)
        options.append(dict((str(k), str(v)) for k, v in (entry.get("options") or {}).items()))
    return names, options


def _profiled(names):
    """Whether a session needs its node placement read: only when a provider other than CPU is asked."""
    return any(n != "CPUExecutionProvider" for n in names)


def open_session(path, spec, profile=False):
    """A session on the spec's providers; with `profile`, profiling is on until placement() reads it."""
    import contextlib
    import io
    import tempfile

    import onnxruntime as ort

    names, provider_options = session_providers(spec, ort)
    options = ort.SessionOptions()
    if spec.get("intra_op_threads"):
        options.intra_op_num_threads = int(spec["intra_op_threads"])
    if spec.get("inter_op_threads"):
        options.inter_op_num_threads = int(spec["inter_op_threads"])
    if profile and _profiled(names):
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tempfile.mkdtemp(prefix="edgebench-profile."), "session")
    printed = io.StringIO()
    try:
        # onnxruntime's Python layer prints an EP's failure to stdout (where our JSON goes) and retries on CPU
        with contextlib.redirect_stdout(printed):
            session = ort.InferenceSession(path, sess_options=options, providers=names,
                                           provider_options=provider_options)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types here
        first = _ort_message(exc)
        raise RunnerError(
            "bad_model",
            "onnxruntime cannot load %s: %s; check the file is a valid ONNX model "
            "(python -m onnx.checker) exported for opset/runtime %s" % (os.path.basename(path), first, ort.__version__),
        )
    dropped = [n for n in names if n not in session.get_providers()]
    if dropped:
        if options.enable_profiling:
            _end_profile(session)
        said = [line for line in printed.getvalue().splitlines() if line.startswith("EP Error")]
        reason = _ort_message(said[0][len("EP Error "):]) if said else "no reason given"
        raise RunnerError("bad_provider", "onnxruntime %s could not start %s with options %s (%s) and fell back to "
                          "%s; fix the provider's options" % (ort.__version__, ", ".join(dropped),
                                                              json.dumps(provider_options), reason,
                                                              ", ".join(session.get_providers())))
    return session


def _end_profile(session):
    """End a session's profiling: its events (the file is removed with its folder), or what went wrong."""
    import shutil

    path = session.end_profiling()
    if not path:
        return "onnxruntime wrote no profile"
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        return "cannot read the profile %s: %s" % (path, exc)
    finally:
        shutil.rmtree(os.path.dirname(os.path.abspath(path)), ignore_errors=True)


def placement(session, spec):
    """Which provider ran each node of the profiled calls; nodes on any provider but the first asked fell back.

    onnxruntime gives a provider only the nodes it claims and runs the rest on the next provider
    (in the end CPU) without a word; the profile's per-node events name the provider of each kernel.
    A provider's fused subgraph counts as one node; the other nodes are onnxruntime's after its graph
    optimizations. Nodes that did not run (an If branch not taken) are not seen."""
    import onnxruntime as ort

    asked = session_providers(spec, ort)[0]
    events = _end_profile(session)
    if isinstance(events, str):
        return {"error": events}
    nodes, fallback, seen = {}, [], set()
    for event in events:
        name = event.get("name") or ""
        if event.get("cat") != "Node" or not name.endswith("_kernel_time") or name in seen:
            continue
        seen.add(name)
        args = event.get("args") or {}
        provider = args.get("provider") or "unknown"
        nodes[provider] = nodes.get(provider, 0) + 1
        if provider != asked[0]:
            fallback.append({"node": name[:-len("_kernel_time")], "op": args.get("op_name"), "provider": provider})
    used = [p for p in asked if p in nodes] + sorted(p for p in nodes if p not in asked)
    return {"nodes": nodes, "used": used, "fallback": fallback}


# ---------------------------------------------------------------- the reference workload
#
# A host changes speed under a benchmark: a sibling hyperthread gets busy, a frequency or power state
# moves. Measured here, 16 fresh processes timing a one-node model sat at two levels, 4.2 and 6.6 us,
# each lasting longer than one process. Every bench process therefore times the same two tiny graphs
# before and after the model: one call of a 256-float Relu (the call path: Python, the binding, the
# executor) and a 128x128 MatMul (arithmetic), on one thread each. If they moved, the machine moved.
# The graphs are written here as protobuf bytes: the runner has onnxruntime and numpy, not onnx.

REFERENCE_WORKLOADS = (("call", "Relu", (1, 256), 200), ("compute", "MatMul", (128, 128), 20))


def _pb_varint(n):
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb_field(number, value):
    """One protobuf field: an int as a varint, text or bytes length-delimited."""
    if isinstance(value, int):
        return _pb_varint(number << 3) + _pb_varint(value)
    if isinstance(value, str):
        value = value.encode()
    return _pb_varint(number << 3 | 2) + _pb_varint(len(value)) + value


def _pb_float_tensor(name, shape):
    """ValueInfoProto{name, TypeProto{tensor_type{elem_type FLOAT, shape}}}."""
    dims = b"".join(_pb_field(1, _pb_field(1, d)) for d in shape)
    return _pb_field(1, name) + _pb_field(2, _pb_field(1, _pb_field(1, 1) + _pb_field(2, dims)))


def reference_graph(op, shape):
    """A one-node ONNX model y = op(x) (or op(x, x) for MatMul) as serialized ModelProto bytes."""
    inputs = ("x", "x") if op == "MatMul" else ("x",)
    node = b"".join(_pb_field(1, i) for i in inputs) + _pb_field(2, "y") + _pb_field(4, op)
    graph = (_pb_field(1, node) + _pb_field(2, "reference")
             + _pb_field(11, _pb_float_tensor("x", shape)) + _pb_field(12, _pb_float_tensor("y", shape)))
    return _pb_field(1, 7) + _pb_field(7, graph) + _pb_field(8, _pb_field(2, 13))  # IR 7, opset 13


class Reference:
    """The reference workloads' sessions; time() gives each workload's median call in ns."""

    def __init__(self):
        import numpy as np
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.workloads = []
        for name, op, shape, calls in REFERENCE_WORKLOADS:
            session = ort.InferenceSession(reference_graph(op, shape), sess_options=options,
                                           providers=["CPUExecutionProvider"])
            feed = {"x": np.linspace(-1, 1, int(np.prod(shape)), dtype=np.float32).reshape(shape)}
            self.workloads.append((name, session, feed, calls))

    def time(self, blocks=5):
        """{workload: median ns of one call} over `blocks` blocks of calls, after a few warm-up calls."""
        clock, out = time.perf_counter_ns, {}
        for name, session, feed, calls in self.workloads:
            for _ in range(3):
                session.run(None, feed)
            medians = []
            for _ in range(blocks):
                samples = []
                for _ in range(calls):
                    t0 = clock()
                    session.run(None, feed)
                    samples.append(clock() - t0)
                samples.sort()
                medians.append(samples[len(samples) // 2])
            medians.sort()
            out[name] = medians[len(medians) // 2]
        return out


# ---------------------------------------------------------------- model inputs: shapes and values
#
# Every input gets its value from, in this order: --input (spec "values": a number, a .npy file, or
# an explicit "random"), the data file (an array named after the input; a lone `x` feeds a one-input
# model), else random values -- for float tensors only. A random integer, bool or rank-0 input can
# select a code path (a sample-rate scalar ran a streaming model's 8 kHz branch and reported ok), so
# such an input without a value is an error that names it and the flag to set it.
#
# Shapes: --shape, else a given array's shape, else the declared sizes; a symbolic first axis is the
# batch; a named symbolic dimension known in one input (say `batch`) has that size in every input.


def _dim_name(dim):
    """A symbolic dimension's own name, or None when it has none (None, "", "?")."""
    return dim if isinstance(dim, str) and dim not in ("", "?") else None


def _fixed(dim):
    return isinstance(dim, int) and dim > 0


def _fmt_shape(shape):
    return "[" + ",".join(str(d) if _fixed(d) else "?" for d in shape) + "]"


def _fits(declared, shape):
    return len(shape) == len(declared) and all(s > 0 and (not _fixed(d) or d == s) for d, s in zip(declared, shape))


def _integral(dtype):
    return dtype == "bool" or dtype.startswith(("int", "uint"))


class Inputs(object):
    """What the runner feeds one model: an array per input, where each came from, and the data rows."""

    def __init__(self):
        self.feeds = {}  # input name -> the array every timed call gets
        self.report = []  # per input: name, type, declared, shape, dtype, source, value
        self.samples = {}  # input name -> the data file's whole array (accuracy walks its rows)
        self.labels = None  # the data file's y
        self.unmatched = set()  # data arrays this model took for no input
        self.batch = 1  # items per call


def _data_file(spec, inputs):
    """The data file's arrays matched to inputs {input: (array, array name)}, its y, and unmatched names."""
    import numpy as np

    if not (spec.get("files") or {}).get("data"):
        return {}, None, set()
    path = _file(spec, "data")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = dict((k, npz[k]) for k in npz.files)
    except Exception as exc:  # noqa: BLE001 - numpy raises several types for a bad file
        raise RunnerError("bad_data", "%s is not an .npz of arrays named after the model's inputs: %s" % (path, exc))
    names = [i.name for i in inputs]
    matched = dict((n, (arrays[n], n)) for n in names if n in arrays)
    if not matched and len(names) == 1 and "x" in arrays:
        matched[names[0]] = (arrays["x"], "x")  # the original contract: x (and y) for a one-input model
    unmatched = set(arrays) - set(a for _, a in matched.values()) - set(["y"])
    return matched, arrays.get("y"), unmatched


def _value_file(spec, key, name):
    import numpy as np

    path = _file(spec, key)
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise RunnerError("bad_input", "--input %s=%s: not a .npy array file (%s)"
                          % (name, os.path.basename(path), exc))


def _as_dtype(array, dtype, what):
    """A given array in the input's dtype; fractional values for an integer or bool input are refused."""
    import numpy as np

    array = np.asarray(array)
    if _integral(dtype) and array.dtype.kind not in "biu":
        raise RunnerError("bad_input", "%s holds %s values, but the input is %s; give whole numbers"
                                       % (what, array.dtype, dtype))
    return array.astype(dtype, copy=False)


def _constant(name, dtype, shape, value):
    import numpy as np

    if _integral(dtype) and float(value) != int(value):
        raise RunnerError("bad_input", "--input %s=%s: input %r is %s; give a whole number"
                          % (name, value, name, dtype))
    try:
        return np.full(shape, value, dtype=dtype)
    except (OverflowError, ValueError) as exc:
        raise RunnerError("bad_input", "--input %s=%s does not fit %s: %s" % (name, value, dtype, exc))


def _rows(array, n):
    """The first n rows of a data array, repeated when it has fewer."""
    import numpy as np

    if not len(array):
        raise RunnerError("bad_data", "a data array has no rows; give at least one sample")
    reps = -(-n // len(array))
    return (array if reps == 1 else np.concatenate([array] * reps))[:n]


def _shape_problem(inputs, known):
    """One message naming every input with sizes still unknown, with --shape flags to paste and fill in."""
    placeholders, lines, flags = {}, [], []
    for inp in inputs:
        shape = known[inp.name]
        if all(s is not None for s in shape):
            continue
        axes, parts = [], []
        for axis, (dim, size) in enumerate(zip(inp.shape, shape)):
            if size is not None:
                parts.append(str(size))
                continue
            name = _dim_name(dim)
            axes.append("axis %d %s" % (axis, repr(name) if name else "unnamed"))
            key = name or (inp.name, axis)
            if key not in placeholders:
                simple = name and re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,15}$", name)
                placeholders[key] = name if simple else "D%d" % (len(placeholders) + 1)
            parts.append(placeholders[key])
        lines.append("%s%s (%s)" % (inp.name, _fmt_shape(shape), ", ".join(axes)))
        flags.append("--shape %s=%s" % (inp.name, ",".join(parts)))
    if not lines:
        return None
    return "%d input%s with dimensions of unknown size: %s; set them with %s (a size in place of %s)" % (
        len(lines), "" if len(lines) == 1 else "s", "; ".join(lines), " ".join(flags),
        ", ".join(sorted(set(placeholders.values()))))


def _value_problem(missing):
    """One message naming every input that must not get invented values."""
    return ("no value for %s: a random value there can select another code path than real use; give %s "
            "(a number or a .npy file), or --input %s=random to accept random values" % (
                ", ".join("%s (%s)" % m for m in missing), " ".join("--input %s=VALUE" % n for n, _ in missing),
                missing[0][0] if len(missing) == 1 else "NAME"))


def _known_shapes(inputs, spec, files, data):
    """Each input's sizes from --shape, a given array or the declaration; None where still unknown."""
    shapes_given = spec.get("shapes") or {}
    known = {}
    for inp in inputs:
        declared = list(inp.shape)
        given, what = shapes_given.get(inp.name), "--shape %s" % inp.name
        if given is None and inp.name in files:
            given, what = list(files[inp.name].shape), "the array given with --input %s" % inp.name
        if given is not None:
            shape = [int(d) for d in given]
            if not _fits(declared, shape):
                raise RunnerError("bad_shape", "%s=%s does not fit input %r declared as %s; keep the rank and the "
                                               "fixed sizes" % (what, ",".join(map(str, shape)), inp.name,
                                                                _fmt_shape(declared)))
        elif inp.name in data:
            array, array_name = data[inp.name]
            rows = list(array.shape[1:])
            if array.ndim != len(declared) or not _fits(declared[1:], rows):
                raise RunnerError("bad_shape", "data array %r has shape %s, input %r is declared %s (one sample per "
                                               "row along the first axis)" % (array_name, list(array.shape),
                                                                             inp.name, _fmt_shape(declared)))
            shape = [declared[0] if _fixed(declared[0]) else None] + rows if declared else []
        else:
            shape = [d if _fixed(d) else None for d in declared]
        known[inp.name] = shape
    # Named dimensions share their size across inputs; an unknown first axis is the batch. Three passes,
    # so a size fixed by any input (or by the batch) reaches inputs listed before it.
    sizes, batch = {}, int(spec.get("batch") or DEFAULTS["batch"])
    for batch_pass in (False, True, False):
        for inp in inputs:
            shape = known[inp.name]
            for axis, dim in enumerate(inp.shape):
                name = _dim_name(dim)
                if shape[axis] is None and name in sizes:
                    shape[axis] = sizes[name]
                elif shape[axis] is None and axis == 0 and batch_pass:
                    shape[axis] = batch
                if shape[axis] is not None and name is not None:
                    sizes.setdefault(name, shape[axis])
    return known


def prepare_inputs(session, spec, strict=True):
    """Shapes and values for every input of `session` from the spec's shapes, values, data and batch.

    strict=False (paired mode, several models): --shape / --input names and data arrays this model
    lacks are left to the caller, who checks them against all the models.
    """
    import numpy as np

    inputs = session.get_inputs()
    names = [i.name for i in inputs]
    values = dict(spec.get("values") or {})
    for flag, status, given in (("--shape", "bad_shape", spec.get("shapes") or {}), ("--input", "bad_input", values)):
        unknown = sorted(set(given) - set(names))
        if strict and unknown:
            raise RunnerError(status, "%s names %s, but the model's inputs are %s" % (
                flag, ", ".join(unknown), ", ".join(names)))
    plan = Inputs()
    data, plan.labels, plan.unmatched = _data_file(spec, inputs)
    if strict and plan.unmatched:
        raise RunnerError("bad_data", "%s has arrays %s that match no input; name the arrays after the model's "
                                      "inputs (%s; x also feeds a one-input model) and the labels y" % (
                                          spec["files"]["data"], ", ".join(sorted(plan.unmatched)), ", ".join(names)))
    files = dict((n, _value_file(spec, v["file"], n)) for n, v in values.items() if n in names and "file" in v)
    dtypes, missing = {}, []
    for inp in inputs:
        dtype = dtypes[inp.name] = _DTYPES.get(inp.type)
        if dtype is None:
            raise RunnerError("bad_model", "input %r has type %s, which the runner cannot feed" % (inp.name, inp.type))
        if inp.name not in values and inp.name not in data and (_integral(dtype) or not inp.shape):
            missing.append((inp.name, "%s %s" % (dtype, "scalar" if not inp.shape else "tensor")))
    known = _known_shapes(inputs, spec, files, data)
    shape_problem = _shape_problem(inputs, known)
    problems = [p for p in (shape_problem, missing and _value_problem(missing)) if p]
    if problems:
        raise RunnerError("bad_shape" if shape_problem else "bad_input", "; and ".join(problems))

    rng = np.random.default_rng(int((spec.get("inputs") or {}).get("seed", 0)))
    for inp in inputs:
        name, dtype, shape = inp.name, dtypes[inp.name], known[inp.name]
        value, detail = values.get(name) or {}, None
        if "constant" in value:
            feed, source, detail = _constant(name, dtype, shape, value["constant"]), "constant", value["constant"]
        elif "file" in value:
            feed, source = _as_dtype(files[name], dtype, "--input %s" % name), "constant"
            detail = os.path.basename(spec["files"][value["file"]])
        elif name in data and not value.get("random"):
            array, array_name = data[name]
            what = "data array %r" % array_name
            feed = _as_dtype(_rows(array, shape[0]) if shape else array, dtype, what)
            source, detail = "data", (array_name if array_name != name else None)
            if shape:
                plan.samples[name] = _as_dtype(array, dtype, what)
        elif dtype == "bool":
            feed, source = np.asarray(rng.random(shape) < 0.5), "random"
        elif _integral(dtype):
            feed, source = rng.integers(0, 100, size=shape).astype(dtype), "random"  # small: ids, indices
        else:
            feed, source = np.asarray(rng.standard_normal(shape)).astype(dtype), "random"
        plan.feeds[name] = feed
        plan.report.append({"name": name, "type": inp.type, "dtype": dtype, "shape": list(shape), "source": source,
                            "value": detail, "declared": [d if isinstance(d, int) else str(d) for d in inp.shape]})
    # Items per call: the size the batch rule (or a --shape in its place) gave a symbolic first axis.
    firsts = [known[i.name][0] for i in inputs if i.shape and not _fixed(i.shape[0])]
    plan.batch = (firsts or [known[i.name][0] for i in inputs if i.shape] or [1])[0]
    return plan


# ---------------------------------------------------------------- measuring


def _timed_loop(run, min_iterations, min_time_s, max_time_s, max_iterations):
    """Call run() until both minimums are met or a maximum is hit; per-call times in ns."""
    clock = time.perf_counter_ns
    samples = []
    append = samples.append
    min_ns, max_ns = int(min_time_s * 1e9), int(max_time_s * 1e9)
    start = clock()
    while True:
        t0 = clock()
        run()
        t1 = clock()
        append(t1 - t0)
        elapsed = t1 - start
        n = len(samples)
        if (n >= min_iterations and elapsed >= min_ns) or elapsed >= max_ns or n >= max_iterations:
            return samples, elapsed


def _loop_settings(spec, defaults):
    """(min_iterations, min_time_s, max_time_s, max_iterations) from a spec, missing keys from `defaults`."""
    def get(key, kind):
        value = spec.get(key)
        return kind(defaults[key] if value is None else value)

    return (get("min_iterations", int), get("min_time_s", float), get("max_time_s", float),
            get("max_iterations", int))


def bench(spec):
    _need_runtime()
    result = {"mode": "bench"}
    if spec.get("intra_op_threads"):
        result["intra_op_threads"] = int(spec["intra_op_threads"])
    path = _file(spec, "model")
    reference = Reference() if spec.get("reference", True) else None
    result["rss_before_session_mb"] = rss_mb()
    t0 = time.perf_counter_ns()
    session = open_session(path, spec, profile=True)
    result["init_ms"] = (time.perf_counter_ns() - t0) / 1e6
    result["providers"] = session.get_providers()
    result["rss_after_session_mb"] = rss_mb()
    try:
        plan = prepare_inputs(session, spec)
        result["inputs"] = plan.report
        feeds = plan.feeds
        outputs = [o.name for o in session.get_outputs()]

        def run():
            session.run(outputs, feeds)

        t0 = time.perf_counter_ns()
        try:
            run()
        except Exception as exc:  # noqa: BLE001
            first = _ort_message(exc)
            raise RunnerError("run_failed", "inference failed with inputs %s: %s" % (
                ", ".join("%s%s" % (k, list(v.shape)) for k, v in feeds.items()), first))
        result["first_inference_ms"] = (time.perf_counter_ns() - t0) / 1e6
    finally:
        if session.get_session_options().enable_profiling:
            # the first call was profiled; ending the profile here keeps its cost out of the timed calls
            result["placement"] = placement(session, spec)

    warm = spec.get("warmup") or {}
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside the loop is the runner's noise, not the model's
    try:
        if reference:
            result["reference_before_ns"] = reference.time()
        warm_ns, _ = _timed_loop(run, *_loop_settings(warm, DEFAULTS["warmup"]))
        samples, elapsed = _timed_loop(run, *_loop_settings(spec, DEFAULTS))
        if reference:
            result["reference_after_ns"] = reference.time()
    finally:
        if gc_was_enabled:
            gc.enable()
    result["warmup_ns"] = warm_ns
    result["latencies_ns"] = samples
    result["batch_size"] = plan.batch
    result["throughput_ips"] = plan.batch * len(samples) / (elapsed / 1e9) if elapsed else None
    result["peak_rss_mb"] = peak_rss_mb()
    if spec.get("accuracy"):
        result["accuracy"] = evaluate(session, plan, spec)
    if spec.get("streams"):
        session = None  # its idle thread pool would share the cores with the streams
        result.update(streams_phase(path, spec, feeds, outputs, plan.batch))
    return result


# ---------------------------------------------------------------- concurrent streams: what the board can deliver
#
# The single-stream loop answers "how long does one call take"; a board serving several cameras or
# requests is asked "how many items per second can it deliver". N Python threads each call run() back to
# back; onnxruntime releases the GIL inside run(), so the calls overlap on the cores. Each thread has its
# own session by default ("separate"); "shared" puts every thread on one session (one copy of the weights).

STREAM_SESSIONS = ("separate", "shared")


def stream_plan(streams, cores, threads=None):
    """(number of streams, intra-op threads per stream) for a spec's "streams" value on `cores` cores.

    Unless `threads` is given, each stream gets cores // N threads (at least one), so that streams x threads
    never asks for more threads than there are cores: oversubscribed intra-op pools spin against each other.
    """
    cores = max(1, int(cores or 1))
    if streams == "auto":
        n = cores
    else:
        try:
            n = int(streams)
        except (TypeError, ValueError):
            n = 0
        if n < 1 or str(streams).strip() != str(n):
            raise RunnerError("bad_spec", "streams must be a whole number >= 1 or \"auto\" (got %r)" % (streams,))
    return n, int(threads) if threads else max(1, cores // n)


def concurrent_loops(runs, warmup, settings):
    """Run each callable of `runs` back to back in its own thread; per-call times of every stream.

    All streams warm up together, then start the timed phase at one barrier. The phase ends for all of
    them when the stopping rule (min_iterations, min_time_s, max_time_s, max_iterations) holds for their
    total calls; only calls that ended by then count, so every counted call ran with all N streams busy.
    Returns (latencies_ns per stream, ns from each stream's start to the end of its last counted call).
    """
    import threading

    min_iterations, min_time_s, max_time_s, max_iterations = settings
    min_ns, max_ns = int(min_time_s * 1e9), int(max_time_s * 1e9)
    clock = time.perf_counter_ns
    n = len(runs)
    durations = [[] for _ in runs]
    ends = [[] for _ in runs]
    starts = [0] * n
    stop_at = [None]  # the clock when the rule was met: the end of the timed window
    errors = []
    barrier = threading.Barrier(n)

    def stream(i):
        run, mine, my_ends = runs[i], durations[i], ends[i]
        try:
            _timed_loop(run, *warmup)
        except Exception as exc:  # noqa: BLE001 - reported after the join, with the model's message
            errors.append(exc)
        barrier.wait()
        if errors:
            return
        start = starts[i] = clock()
        try:
            while stop_at[0] is None:
                t0 = clock()
                run()
                t1 = clock()
                mine.append(t1 - t0)
                my_ends.append(t1)
                elapsed = t1 - start
                total = sum(len(d) for d in durations)
                if (total >= min_iterations and elapsed >= min_ns) or elapsed >= max_ns or total >= max_iterations:
                    if stop_at[0] is None:
                        stop_at[0] = t1
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
            stop_at[0] = clock()

    threads = [threading.Thread(target=stream, args=(i,), name="edgebench-stream-%d" % i) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RunnerError("run_failed", "a stream's inference failed: %s" % _ort_message(errors[0]))
    latencies, spans = [], []
    for i in range(n):
        counted = sum(1 for t1 in ends[i] if t1 <= stop_at[0])
        latencies.append(durations[i][:counted])
        spans.append(ends[i][counted - 1] - starts[i] if counted else 0)
    return latencies, spans


def streams_phase(path, spec, feeds, outputs, batch):
    """N concurrent streams on this model: total items/s and every stream's per-call latencies."""
    n, per_stream = stream_plan(spec["streams"], _cores(), spec.get("stream_threads") or spec.get("intra_op_threads"))
    mode = spec.get("stream_sessions") or STREAM_SESSIONS[0]
    if mode not in STREAM_SESSIONS:
        raise RunnerError("bad_spec", "stream_sessions must be one of %s (got %r)" % (", ".join(STREAM_SESSIONS), mode))
    stream_spec = dict(spec, intra_op_threads=per_stream)
    shared = open_session(path, stream_spec) if mode == "shared" else None
    sessions = [shared or open_session(path, stream_spec) for _ in range(n)]
    runs = [(lambda s=s: s.run(outputs, feeds)) for s in sessions]
    warmup = _loop_settings(spec.get("warmup") or {}, DEFAULTS["warmup"])
    settings = _loop_settings(spec, DEFAULTS)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        latencies, spans = concurrent_loops(runs, warmup, settings)
    finally:
        if gc_was_enabled:
            gc.enable()
    rates = [len(lat) / (span / 1e9) for lat, span in zip(latencies, spans) if span > 0]
    return {"streams": n, "stream_threads": per_stream, "stream_sessions": mode,
            "stream_latencies_ns": latencies, "stream_span_ns": spans,
            "throughput_ips_streams": batch * sum(rates) if rates else None,
            "stream_peak_rss_mb": peak_rss_mb()}


def evaluate(session, plan, spec, chunk=64):
    """Run the data file's rows through the model; count a confusion matrix of argmax vs y.

    The inputs fed from data advance row by row; every other input keeps its timed-loop value. A
    one-input model with a symbolic batch axis goes `chunk` rows at a time, any other model in calls
    of the timed loop's size (the last one padded by repeating its last row).
    """
    import numpy as np

    if plan.labels is None:
        return None  # data without labels feeds the inputs; there is nothing to score
    if not plan.samples:
        raise RunnerError("bad_data", "accuracy needs a data array with one sample per row for an input; %s has "
                                      "none the model takes" % spec["files"]["data"])
    labels = np.asarray(plan.labels).reshape(-1)
    if labels.dtype.kind not in "biuf":
        raise RunnerError("bad_data", "labels y in %s hold %s values; give integer class labels"
                          % (spec["files"]["data"], labels.dtype))
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(labels) | (labels != np.round(labels)) | (labels < 0)
    if bad.any():  # a label of -1 counted as the last class: accuracy from nothing
        first = int(np.argmax(bad))
        raise RunnerError("bad_data", "labels y in %s must be whole numbers >= 0; y[%d] is %s"
                          % (spec["files"]["data"], first, labels[first]))
    labels = labels.astype(np.int64)
    n = len(labels)
    for name, rows in plan.samples.items():
        if len(rows) != n:
            raise RunnerError("bad_data", "the data for input %r has %d rows but y has %d labels"
                              % (name, len(rows), n))
    inputs = session.get_inputs()
    single = len(inputs) == 1 and not _fixed(inputs[0].shape[0])
    step = chunk if single else len(plan.feeds[next(iter(plan.samples))])
    output = session.get_outputs()[0].name
    preds = []
    for start in range(0, n, step):
        feeds = dict(plan.feeds)
        m = min(step, n - start)
        for name, rows in plan.samples.items():
            part = rows[start:start + step]
            if not single and m < step:  # a fixed-size call: pad with the last row, its predictions dropped
                part = np.concatenate([part, np.repeat(part[-1:], step - m, axis=0)])
            feeds[name] = part
        try:
            out = session.run([output], feeds)[0]
        except Exception as exc:  # noqa: BLE001
            raise RunnerError("bad_data", "the model rejected data rows %d-%d: %s" % (start, start + m - 1,
                                                                                    _ort_message(exc)))
        preds.append(np.asarray(out).reshape(m if single else step, -1)[:m].argmax(axis=1))
    pred = np.concatenate(preds)
    n_classes = int(max(labels.max(), pred.max()) + 1)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    return {"n": int(n), "confusion": cm.tolist()}


def evaluate_models(spec):
    """Accuracy of several models on files.data in this one process (the INT8 forms a build chooses from)."""
    _need_runtime()
    keys = list(spec.get("models") or [])
    if not keys:
        raise RunnerError("bad_spec", "evaluate mode needs the keys of the models to evaluate")
    if not (spec.get("files") or {}).get("data"):
        raise RunnerError("bad_spec", "evaluate mode needs files.data with labels y")
    accuracy = {}
    for key in keys:
        session = open_session(_file(spec, key), spec)
        accuracy[key] = evaluate(session, prepare_inputs(session, spec), spec)
        if accuracy[key] is None:
            raise RunnerError("bad_data", "%s has no array y (labels), so accuracy cannot be measured"
                              % spec["files"]["data"])
    return {"mode": "evaluate", "accuracy": accuracy}


def _paired_sessions(spec, keys):
    """Open every model of a paired run; --shape, --input and data arrays apply to the models that have that input."""
    sessions, feeds, outputs, names, unmatched = [], [], [], set(), None
    for key in keys:
        session = open_session(_file(spec, key), spec)
        plan = prepare_inputs(session, spec, strict=False)
        names |= set(i.name for i in session.get_inputs())
        unmatched = plan.unmatched if unmatched is None else unmatched & plan.unmatched
        sessions.append(session)
        feeds.append(plan.feeds)
        outputs.append([o.name for o in session.get_outputs()])
    for flag, status, given in (("--shape", "bad_shape", spec.get("shapes") or {}),
                                ("--input", "bad_input", spec.get("values") or {}),
                                ("the data file", "bad_data", unmatched or ())):
        unknown = sorted(set(given) - names)
        if unknown:
            raise RunnerError(status, "%s names %s, but no model has such an input" % (flag, ", ".join(unknown)))
    return sessions, feeds, outputs


def block_plan(block, drop, block_time_ns, call_ns):
    """(calls per block, calls dropped from its start) for a model whose warm call takes `call_ns`.

    Without `block_time_ns`, every block is `block` calls with `drop` dropped. With it, a slow model's
    block holds only the calls that fill about that time (at least 2), and the drop shrinks in
    proportion but never below 1: the first call after the other model ran still re-warms the cache.
    At 50 ms a call, 40-call blocks made one round take 12 s and only 1-4 rounds fit in a minute.
    """
    if not block_time_ns or call_ns <= 0:
        return block, drop
    calls = min(block, max(2, -(-block_time_ns // call_ns)))
    dropped = min(drop, max(1, drop * calls // block)) if drop else 0
    return max(calls, dropped + 1), dropped


def paired(spec):
    """Alternate several models in blocks of calls in this one process (A/B comparisons).

    Block alternation, not single calls: alternating every call lets the models evict each other's
    weights from cache, which biased a measured 1.37x ratio to 1.23x here. The first calls of each
    block re-warm the cache and are dropped. Blocks run in ABBA order (neither side always goes
    first) for at least `n_blocks` blocks per model and, when `min_time_s` is given, until that much
    time has passed (a slow model on a board needs fewer blocks than a fast one); always an even
    number, so each model leads equally often. `max_time_s` ends the blocks early (after a whole
    ABBA cycle), and `block_time_s` sizes each model's blocks from its warm-up calls (see block_plan).
    """
    _need_runtime()
    keys = list(spec.get("models") or [])
    if len(keys) < 2 or len(set(keys)) != len(keys):
        raise RunnerError("bad_spec", "paired mode needs at least two distinct model keys")
    block = int(spec.get("block_size", DEFAULTS["block_size"]))
    drop = int(spec.get("drop_per_block", DEFAULTS["drop_per_block"]))
    n_blocks = int(spec.get("n_blocks", DEFAULTS["n_blocks"]))
    if block < 1 or not 0 <= drop < block or n_blocks < 1:
        raise RunnerError("bad_spec", "paired mode needs block_size >= 1, 0 <= drop_per_block < block_size "
                                      "and n_blocks >= 1 (got %d, %d, %d)" % (block, drop, n_blocks))
    min_ns = int(float(spec.get("min_time_s", 0.0)) * 1e9)
    max_ns = int(float(spec.get("max_time_s", DEFAULTS["paired_max_time_s"])) * 1e9)
    block_time_ns = int(float(spec.get("block_time_s") or 0.0) * 1e9)
    sessions, feeds, outputs = _paired_sessions(spec, keys)
    order = list(range(len(keys)))
    clock = time.perf_counter_ns
    plan = []
    for i in order:  # warm every model before any timing; the first call may fail on bad inputs
        try:
            warm_start = clock()
            for _ in range(drop + 1):
                t0 = clock()
                sessions[i].run(outputs[i], feeds[i])
                call_ns = clock() - t0
                if block_time_ns and clock() - warm_start >= block_time_ns:
                    break  # a slow model: a few of its calls warm it as well as drop + 1
        except Exception as exc:  # noqa: BLE001
            raise RunnerError("run_failed", "inference of %s failed with inputs %s: %s" % (
                keys[i], ", ".join("%s%s" % (k, list(v.shape)) for k, v in feeds[i].items()), _ort_message(exc)))
        plan.append(block_plan(block, drop, block_time_ns, call_ns))
    blocks = {k: [] for k in keys}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    start = clock()
    b = 0
    try:
        while True:
            sequence = order if b % 2 == 0 else order[::-1]  # ABBA: neither side always goes first
            for i in sequence:
                sess, fd, out = sessions[i], feeds[i], outputs[i]
                calls, dropped = plan[i]
                times = []
                for _ in range(calls):
                    t0 = clock()
                    sess.run(out, fd)
                    times.append(clock() - t0)
                blocks[keys[i]].append(times[dropped:])
            b += 1
            elapsed = clock() - start
            if b % 2 == 0 or n_blocks == 1:
                if (b >= n_blocks and elapsed >= min_ns) or elapsed >= max_ns:
                    break
    finally:
        if gc_was_enabled:
            gc.enable()
    return {"mode": "paired", "models": keys, "block_size": block, "drop_per_block": drop, "n_blocks": b,
            "block_calls": {k: plan[i][0] for i, k in enumerate(keys)},
            "block_dropped": {k: plan[i][1] for i, k in enumerate(keys)}, "blocks_ns": blocks}


# ---------------------------------------------------------------- lock mode: one measurement per board

LOCK_FILE = "~/.cache/edgebench/board.lock"
LOCK_POLL_S = 0.25


def _say(doc):
    sys.stdout.write(json.dumps(dict(doc, runner_version=RUNNER_VERSION)) + "\n")
    sys.stdout.flush()


def _open_lock_file(path):
    """The lock file, shared by every account that can reach it (mode 0666); opened without O_CREAT when it
    exists, since a sticky world-writable folder refuses O_CREAT on another user's file (protected_regular)."""
    try:
        return os.open(path, os.O_RDWR)
    except FileNotFoundError:
        pass
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        os.fchmod(fd, 0o666)
    except OSError:
        pass
    return fd


def _holder_in(fd):
    """Who the file says holds the lock (what the holder wrote), or None while it is empty or half-written."""
    try:
        data = os.pread(fd, 65536, 0)
        holder = json.loads(data.decode("utf-8")) if data.strip() else None
    except (OSError, ValueError):
        return None
    if isinstance(holder, dict) and holder.get("since_unix"):
        holder["held_s"] = round(max(0.0, time.time() - float(holder["since_unix"])), 1)
    return holder if isinstance(holder, dict) else None


def _stdin_closed(wait_s):
    """True when stdin reached end of file within wait_s (the harness or its connection is gone)."""
    import select

    readable, _, _ = select.select([sys.stdin], [], [], wait_s)
    return bool(readable) and not sys.stdin.buffer.read1(65536)


def _wait_for_flock(fd, kind, holder_of, timeout, started, seen):
    """Poll for flock `kind` on fd, saying who holds it each time that changes; "ok", "timeout" or "gone"
    (our stdin ended: the harness that asked is gone)."""
    import fcntl

    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return "ok"
        except OSError:
            pass
        holder = holder_of()
        if holder and (not seen or holder.get("since_unix") != seen[-1].get("since_unix")):
            seen.append(holder)
            _say({"status": "waiting", "holder": holder, "waited_s": round(time.time() - started, 1)})
        if timeout is not None and time.time() - started >= float(timeout):
            _say({"status": "lock_timeout", "holder": holder, "waited_s": round(time.time() - started, 1),
                  "error": "the board is still in use"})
            return "timeout"
        if _stdin_closed(LOCK_POLL_S):
            return "gone"


def hold_lock(spec):
    """Lock mode: wait for the board's lock, hold it until stdin closes. The kernel releases a flock when its
    process ends, so a holder that is killed or loses its connection can never leave the board locked.

    Every runner a holder starts also keeps a shared flock on BUSY (the lock file + ".busy", spec key
    board_busy) while it runs; a new holder waits for those to end too, so a measurement left running on the
    board by a killed edgebench cannot overlap the next one."""
    import fcntl
    import signal

    # Ctrl-C on a terminal reaches the whole process group: the lock ends when edgebench does, not before
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    path = os.path.expanduser(spec.get("path") or LOCK_FILE)
    try:
        fd = _open_lock_file(path)
        busy = _open_lock_file(path + ".busy")
    except OSError as exc:
        _say({"status": "bad_spec", "error": "cannot open the board's lock file %s: %s" % (path, exc)})
        return REPORTED_ERROR_EXIT
    timeout, started, seen = spec.get("timeout_s"), time.time(), []
    got = _wait_for_flock(fd, fcntl.LOCK_EX, lambda: _holder_in(fd), timeout, started, seen)
    if got == "ok":
        # the last holder's name is still in the file when it was killed: its runners are what we wait for
        previous = _holder_in(fd)
        if previous:
            previous["still_running"] = True
        got = _wait_for_flock(busy, fcntl.LOCK_EX, lambda: previous, timeout, started, seen)
    if got != "ok":
        return REPORTED_ERROR_EXIT if got == "timeout" else 0
    fcntl.flock(busy, fcntl.LOCK_UN)
    os.close(busy)
    now = time.time()
    me = dict(spec.get("holder") or {}, since_unix=now, board_pid=os.getpid())
    me["since_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode("utf-8"), 0)
    _say({"status": STATUS_OK, "path": path, "holder": me, "waited_s": round(now - started, 3), "waited_for": seen,
          "busy": path + ".busy"})
    while not _stdin_closed(None):
        pass
    # The name stays until the next holder writes its own: runners of ours may still measure (we can be
    # cut off mid-measurement), and the next holder names us while it waits for them.
    return 0


def _share_board(spec):
    """A runner started under a board lock keeps a shared flock on its busy file for its whole life."""
    path = spec.get("board_busy")
    if not path:
        return None
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:
        return None  # best effort: the exclusive lock is what keeps measurements apart
    return fd


def _lock_spec(line):
    try:
        spec = json.loads(line)
    except ValueError:
        return None
    return spec if isinstance(spec, dict) and spec.get("mode") == "lock" else None


def main(argv):
    started = time.time()
    doc = {"runner_version": RUNNER_VERSION, "status": STATUS_OK, "error": None, "time_start": started}
    try:
        if len(argv) != 2:
            raise RunnerError("bad_spec", "usage: runner.py SPEC.json (or - for stdin)")
        try:
            if argv[1] == "-":
                # a lock spec is one line: its holder keeps stdin open for as long as it holds the lock
                text = sys.stdin.readline()
                spec = _lock_spec(text) or json.loads(text + sys.stdin.read())
            else:
                spec = json.loads(open(argv[1]).read())
        except (OSError, ValueError) as exc:
            raise RunnerError("bad_spec", "cannot read the runner spec %s: %s" % (argv[1], exc))
        if spec.get("mode") == "lock":
            return hold_lock(spec)
        _share_board(spec)  # its descriptor stays open (and the flock held) until this process ends
        if spec.get("cpu_affinity"):
            try:
                os.sched_setaffinity(0, set(int(c) for c in spec["cpu_affinity"]))
            except (AttributeError, OSError, ValueError) as exc:
                raise RunnerError("bad_spec", "cannot pin to cores %s: %s" % (spec["cpu_affinity"], exc))
        mode = spec.get("mode", "bench")
        doc["machine"] = machine_info(isolate_onnxruntime=mode == "probe")
        doc["telemetry_start"] = telemetry()
        if mode == "bench":
            doc.update(bench(spec))
        elif mode == "paired":
            doc.update(paired(spec))
        elif mode == "evaluate":
            doc.update(evaluate_models(spec))
        elif mode != "probe":
            raise RunnerError("bad_spec", "unknown mode %r (bench, paired, evaluate, probe)" % mode)
        doc["telemetry_end"] = telemetry()
    except RunnerError as exc:
        doc["status"], doc["error"] = exc.status, str(exc)
    except MemoryError:
        doc["status"], doc["error"] = "out_of_memory", "the runner ran out of memory on %s" % socket.gethostname()
    doc["time_end"] = time.time()
    doc["wall_s"] = doc["time_end"] - started
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()
    return 0 if doc["status"] == STATUS_OK else REPORTED_ERROR_EXIT


if __name__ == "__main__":
    sys.exit(main(sys.argv))
