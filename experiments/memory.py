"""Peak memory of this process, for the benchmarks (standard library only: the peer libraries'
runner scripts import it too, from their own virtual environment).

`resource.getrusage(RUSAGE_SELF).ru_maxrss` is not it for a benchmark child: Linux carries the
high-water mark across fork and exec, so a child reports at least the RSS its parent had when it
was started (a 13 MB child of a 313 MB parent reports 313 MB). The kernel's per-address-space
high-water mark, VmHWM in /proc/self/status, starts afresh at exec.
"""

from __future__ import annotations

import resource
import sys


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (VmHWM on Linux; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, kB on Linux
