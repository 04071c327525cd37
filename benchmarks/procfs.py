"""What a process costs, read from Linux's /proc: CPU seconds and resident memory."""

import os
import platform
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` (all its threads) so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces; the fields after it are fixed (utime is 14th).
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_probe(pids: list[int]) -> Callable[[], float]:
    """A function reading the CPU seconds of ``pids`` so far, all together, to the
    nanosecond: /proc counts in clock ticks (10 ms), too coarse for one send."""
    # Linux's clock of a whole process: MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED).
    clocks = [(~pid << 3) | 2 for pid in pids]
    return lambda: sum(time.clock_gettime(clock) for clock in clocks)


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory now (rss) and at its highest so far (peak), in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values["rss" if name == "VmRSS" else "peak"] = int(rest.split()[0]) / 1024
    return values


@dataclass
class CpuMeter:
    """CPU seconds used by some processes between ``start()`` and ``stop()``, with
    samples in between so that a steady window can be cut out afterwards."""

    pids: list[int]
    samples: list[tuple[float, float]] = field(default_factory=list)

    def sample(self) -> None:
        self.samples.append((time.monotonic(), sum(cpu_seconds(pid) for pid in self.pids)))

    def used(self) -> float:
        return self.samples[-1][1] - self.samples[0][1]

    def used_between(self, start: float, end: float) -> tuple[float, float]:
        """CPU seconds used between the samples nearest ``start`` and ``end``, and the
        length of that window."""
        inside = [sample for sample in self.samples if start <= sample[0] <= end]
        if len(inside) < 2:
            return 0.0, 0.0
        return inside[-1][1] - inside[0][1], inside[-1][0] - inside[0][0]

    def used_around(self, start: float, end: float) -> tuple[float, float]:
        """CPU seconds used between the last sample at or before ``start`` and the first
        at or after ``end`` (a window covering all of it), and that window's length."""
        before = [sample for sample in self.samples if sample[0] <= start] or self.samples[:1]
        after = [sample for sample in self.samples if sample[0] >= end] or self.samples[-1:]
        return after[0][1] - before[-1][1], after[0][0] - before[-1][0]


def machine() -> dict:
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "ram_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "os": _os_name(),
        "kernel": platform.release(),
        "sqlite": sqlite3.sqlite_version,
    }


def _os_name() -> str:
    try:
        release = Path("/etc/os-release").read_text()
    except OSError:
        return platform.system()
    for line in release.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


class OtherLoad:
    """How busy other programs kept the machine meanwhile (cores, on average): the whole
    machine's CPU time less this program's and its children's, once they are reaped."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.busy, self.own = _machine_busy_seconds(), _own_seconds()
        self.load_before = os.getloadavg()[0]

    def cores(self) -> float:
        busy = _machine_busy_seconds() - self.busy
        own = _own_seconds() - self.own
        return max(0.0, busy - own) / (time.monotonic() - self.started)


def _machine_busy_seconds() -> float:
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def _own_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system
