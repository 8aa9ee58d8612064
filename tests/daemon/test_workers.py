"""Worker count per device and how a worker's death is described."""

from __future__ import annotations

import signal

from impasto.assembly import worker_count
from impasto.settings import Settings
from impasto.worker.processes import describe_exit, worker_command


def test_one_worker_per_gpu_by_default() -> None:
    assert worker_count(Settings(), gpu_count=0) == 1
    assert worker_count(Settings(), gpu_count=4) == 4
    assert worker_count(Settings(workers=2), gpu_count=4) == 2


def test_exit_descriptions_name_the_signal() -> None:
    assert describe_exit(-signal.SIGKILL) == "worker killed by signal 9 (SIGKILL)"
    assert describe_exit(-signal.SIGSEGV) == "worker killed by signal 11 (SIGSEGV)"
    assert describe_exit(3) == "worker exited with code 3"


def test_worker_is_the_same_python_with_a_subcommand() -> None:
    command = worker_command()
    assert command[-3:] == ["-P", "-m", "impasto.worker"]
