"""What the machine runs on: its CPU, the instructions PyTorch uses there, bf16 units, threads.

Two libraries choose instructions inside PyTorch: ATen's own kernels (elementwise work) by
`ATEN_CPU_CAPABILITY`, and oneDNN (convolutions, matrix products) by `ONEDNN_MAX_CPU_ISA`. Each
variable can cap what the hardware offers, so `isa()` and `fast_bf16()` honour both.
"""

import ctypes
import ctypes.util
import functools
import os
import platform

import torch

from .errors import DigitlearnError

THREADS_VARIABLE = "DIGITLEARN_THREADS"
# torch's own choice (one thread per physical core, or OMP_NUM_THREADS), read before we change it
_TORCH_DEFAULT_THREADS = torch.get_num_threads()
# ATen's capability names, as machine_info reports them
_ISA_NAMES = {"AVX512": "AVX-512", "AVX2": "AVX2"}


def _onednn_allows_amx() -> bool:
    """Whether ONEDNN_MAX_CPU_ISA leaves oneDNN free to use AMX (below it, bf16 is emulated)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return cap in ("", "ALL", "DEFAULT") or "AMX" in cap


def _has_amx() -> bool:
    """Whether the CPU has AMX tiles and oneDNN may use them."""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, so looked up with care
    return bool(amx and amx()) and _onednn_allows_amx()


def fast_bf16(device: torch.device) -> bool:
    """Whether bfloat16 matrix units make mixed precision pay off on `device`.

    GPUs from Ampere on have them; on CPUs they are Intel's AMX tiles (Sapphire Rapids and later),
    where bf16 autocast trained our CNNs 1.4-2.6x faster. Elsewhere bf16 is emulated and slower.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return _has_amx()
    return False


def isa() -> str:
    """The instruction set PyTorch uses on this CPU: "AMX", "AVX-512", "AVX2", or torch's own name
    for another (e.g. "DEFAULT", "ZVECTOR"). AMX is reported when oneDNN may use it, which is what
    decides the speed of convolutions and matrix products."""
    if _has_amx():
        return "AMX"
    capability = torch.backends.cpu.get_cpu_capability()  # honours ATEN_CPU_CAPABILITY
    return _ISA_NAMES.get(capability, capability)


def cpu_name() -> str:
    """The CPU model, e.g. "Intel(R) Xeon(R) Platinum 8480+", or "unknown"."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass  # not Linux: ask the platform
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """The CPUs this process may run on: a container or `taskset` may allow fewer than the
    machine has (macOS and Windows have no affinity masks: all of them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_threads() -> int:
    """torch's default thread count, but no more than the CPUs this process may run on."""
    return min(_TORCH_DEFAULT_THREADS, usable_cores())


def _thread_count(value: object, what: str) -> int:
    """`value` (an int, or text from the environment) as a thread count, at least 1."""
    try:
        n = int(str(value))
    except ValueError:
        n = 0
    if n < 1:
        raise DigitlearnError(f"{what}={value!r}: the number of threads must be a whole number, 1 or more")
    return n


def set_threads(n: int | None = None) -> int:
    """Set PyTorch's thread count to `n`; None means $DIGITLEARN_THREADS if it is set, else
    `default_threads()`. Returns the count in effect."""
    if n is not None:
        n = _thread_count(n, "threads")
    elif os.environ.get(THREADS_VARIABLE, "").strip():
        n = _thread_count(os.environ[THREADS_VARIABLE], THREADS_VARIABLE)
    else:
        n = default_threads()
    torch.set_num_threads(n)
    return torch.get_num_threads()


@functools.cache
def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep memory that training frees, for the next batch to reuse.

    Each batch allocates and frees the same few-megabyte tensors. glibc gives blocks over 128 KB
    back to the kernel when they are freed, until freeing a bigger block raises that limit, and
    taking them again costs a page fault per 4 KB: in a process that has not yet freed a big
    block, a LeNet epoch on MNIST took 900,000 faults and 2 s of kernel time, 40% of the epoch.
    Fixing the limit at its most (32 MB), and keeping up to 1 GB free at the top of the heap,
    makes training as fast whatever ran before it. The cost: the process keeps its peak memory.
    Returns whether the allocator took the settings (False off glibc: macOS, Windows, musl).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


def machine_info(device: str | torch.device = "cpu") -> dict:
    """The machine a result was measured on, for benchmarks' JSON."""
    device = torch.device(device)
    shown = str(device)
    if device.type == "cuda":
        shown += f" ({torch.cuda.get_device_name(device)})"
    return {
        "cpu": cpu_name(),
        "isa": isa(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": shown,
    }
