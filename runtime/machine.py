"""The machine this process runs on: the CPUs it may use, their vector features, memory, GPUs, libraries.

Thread counts come from here (``usable_cores``: the physical cores in this process's CPU affinity,
capped by its cgroup CPU quota, so a container limited to 2 CPUs on a 64-core host gets 2 threads),
and every benchmark report records ``details()`` beside its numbers. Torch-free; nothing heavy is
imported (library versions are read from package metadata).
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import shutil
import subprocess
from pathlib import Path

LIBRARIES = (
    "mnm", "numpy", "onnxruntime", "onnxruntime-gpu", "opencv-python-headless", "opencv-python",
    "tensorrt", "cuda-python",
)
CGROUP = Path("/sys/fs/cgroup")
CPU_FEATURES_ENV = "MNM_CPU_FEATURES"
"""Names the CPU features to assume instead of reading /proc/cpuinfo (space or comma separated;
empty: none): how a test, or a user, sees what ``--precision auto`` would choose on another CPU."""
VNNI = ("avx512_vnni", "avx_vnni")
"""The x86 extensions whose u8 x s8 dot products do not saturate (onnxruntime's INT8 kernels)."""


def physical_cores() -> int:
    """Physical cores in this process's CPU affinity: hyper-thread siblings counted once (Linux)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        try:
            cores.add(Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip())
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))


def cpu_quota(root: Path = CGROUP) -> float | None:
    """CPUs this process's cgroup may use per period (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``
    over ``cpu.cfs_period_us``); None when unlimited or unknown. ``root`` is the cgroup mount."""
    own = _own_cgroup()
    candidates = [(root / own.lstrip("/") / "cpu.max", None)] if own is not None else []
    candidates += [(root / "cpu.max", None), (root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us")]
    for quota_file, period_file in candidates:
        try:
            text = quota_file.read_text().split()
            if period_file is None:  # v2: "max 100000" or "200000 100000"
                quota, period = text[0], text[1]
            else:
                quota, period = text[0], period_file.read_text().split()[0]
        except (OSError, IndexError):
            continue
        if quota in ("max", "-1"):
            return None
        try:
            return int(quota) / int(period) if int(period) > 0 and int(quota) > 0 else None
        except ValueError:
            return None
    return None


def usable_cores() -> int:
    """Threads worth running: physical cores in the affinity mask, capped by the cgroup quota (rounded up)."""
    cores = physical_cores()
    quota = cpu_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


def usable_cpus() -> int:
    """Logical CPUs in this process's affinity mask."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def details(extra_libraries: tuple[str, ...] = ()) -> dict:
    """CPU model, cores and features, memory, OS, GPUs (nvidia-smi) and library versions."""
    try:
        import onnxruntime as ort

        providers = ort.get_available_providers()
    except ImportError:
        providers = []
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "physical_cores": physical_cores(),
        "cpu_quota": cpu_quota(),
        "cpu_features": cpu_features(),
        "memory_gib": memory_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average": load_average(),
        "gpus": gpus(),
        "onnxruntime_providers": providers,
        "libraries": library_versions(LIBRARIES + tuple(extra_libraries)),
    }


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages: above the core count, other work competed for the CPUs."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def library_versions(names) -> dict[str, str]:
    """Installed distribution versions (absent ones are left out); read from metadata, nothing imported."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def gpus() -> list[dict]:
    """NVIDIA GPUs as nvidia-smi lists them; empty where there is none (or no driver)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    query = "name,driver_version,memory.total,compute_cap"
    try:
        out = subprocess.run(
            [smi, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            found.append({"name": parts[0], "driver": parts[1], "memory_mib": parts[2], "compute_capability": parts[3]})
    return found


def cpu_model() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_features() -> list[str]:
    """The vector extensions that set the fp32 peak (FMA width: AVX2 and AVX-512 machines differ ~4x
    here) and INT8's safety (VNNI); ``MNM_CPU_FEATURES`` replaces the read (``CPU_FEATURES_ENV``)."""
    assumed = os.environ.get(CPU_FEATURES_ENV)
    if assumed is not None:
        return assumed.replace(",", " ").split()
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return [f for f in ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni",
                                "amx_tile") if f in flags]
    return []


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError):
        pass
    return None


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _own_cgroup() -> str | None:
    """This process's cgroup v2 path (the ``0::`` line of /proc/self/cgroup)."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:] or "/"
    except OSError:
        pass
    return None
