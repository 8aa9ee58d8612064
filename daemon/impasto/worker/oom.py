"""Whether the kernel's out-of-memory killer stopped a worker, from its memory cgroup's count.

A worker killed by SIGKILL in the middle of a job was most often killed by Linux's OOM killer:
the job needed more memory than the machine had free (a large size, a large batch, a graph
that holds a whole attention matrix). Retrying such a job would only kill the next worker
too, so the supervisor fails it at once with a message a user can act on, when it can tell.
It can tell from the memory cgroup the daemon and its workers run in: cgroup v2's
``memory.events`` and cgroup v1's ``memory.oom_control`` both count the processes the OOM
killer stopped (``oom_kill``), whether the cgroup's own limit or the whole machine ran out.
Elsewhere (macOS, Windows, a kernel without the counter) the count is unknown and a killed
worker's job is retried as any crash is.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# The files with an `oom_kill N` line: v1's memory controller first (a hybrid system's
# unified hierarchy has no memory controller), then v2.
_V1_FILE = "memory.oom_control"
_V2_FILE = "memory.events"


@cache  # a process's cgroup stays what it was when the daemon started
def _counter_files(proc_cgroup: Path, root: Path) -> tuple[Path, ...]:
    """The candidate counter files for this process's memory cgroup."""
    try:
        lines = proc_cgroup.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return ()
    v1: list[Path] = []
    v2: list[Path] = []
    for line in lines:
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        relative = path.lstrip("/")
        if "memory" in controllers.split(","):
            v1.append(root / "memory" / relative / _V1_FILE)
        elif number == "0" and controllers == "":
            v2.append(root / relative / _V2_FILE)
    return (*v1, *v2)


def oom_kill_count(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> int | None:
    """How many processes of this process's memory cgroup the OOM killer has stopped so far,
    or None where the kernel does not say."""
    for path in _counter_files(proc_cgroup, root):
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
    return None


# The OOM killer's signal, SIGKILL, as a child's return code (signal.SIGKILL is POSIX-only).
KILLED = -9


def killed_for_memory(returncode: int | None, before: int | None, after: int | None) -> bool:
    """Whether a worker that exited with ``returncode`` was stopped by the OOM killer: it
    died by SIGKILL and the OOM killer stopped a process of its cgroup between the counts."""
    return returncode == KILLED and before is not None and after is not None and after > before


OUT_OF_MEMORY = (
    "out of memory: the system stopped the worker while it ran this job (Linux's "
    "out-of-memory killer); a smaller size or batch, or fewer jobs at once, needs less"
)
