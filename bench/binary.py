"""Binary benchmark: the Nuitka binary's size and cold start against the same daemon run from
the virtualenv, measured in the same run.

    python bench/binary.py [packaging/out/impasto] [--rounds 3]

Cold: a fresh cache folder, so a onefile payload is unpacked first (the first start after an
install; a standalone folder, what the Linux packages ship, has nothing to unpack). Warm: the
unpacked files are reused. Reference: `python -m impasto serve` from this
virtualenv, whose imports are warm in the page cache like the warm binary's. Each start is timed
until /api/v1/health answers over TCP and until a worker reports ready; the resident memory of
the whole process tree (daemon, workers, onefile bootstraps) is read with the worker idle.
Medians of --rounds starts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "packaging"))
import smoke  # noqa: E402
from nuitka_layout import copy_program, standalone_folder  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Print size, cold, warm and reference start times, and their ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary", nargs="?", type=Path, default=REPO / "packaging/out/impasto")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.binary.is_file():
        parser.error(f"no binary at {args.binary}: run `make package` first")
    cold, warm, reference = [], [], []
    ready: dict[str, list[float]] = {"binary": [], "venv": []}
    rss: dict[str, list[float]] = {"binary": [], "venv": []}
    procs: dict[str, int] = {}
    venv_env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="impasto-bench-") as folder:
            work = Path(folder)
            local = copy_program(args.binary, work / "bin")
            cold.append(smoke.run_once(local, work, generate=False)["health_s"])
            runs = {"binary": smoke.run_once(local, work, generate=False)}
            warm.append(runs["binary"]["health_s"])
            ref = work / "ref"
            ref.mkdir()
            command = [sys.executable, "-m", "impasto"]
            runs["venv"] = smoke.run_once(command, ref, False, venv_env)
            reference.append(runs["venv"]["health_s"])
            for name, run in runs.items():
                ready[name].append(run["worker_ready_s"])
                rss[name].append(run["tree_rss_mb"])
                procs[name] = run["processes"]
    kind = "onefile" if standalone_folder(args.binary) is None else "standalone folder"
    c, w, r = (statistics.median(x) for x in (cold, warm, reference))
    print(f"binary: {smoke.program_mb(args.binary):.1f} MB, {kind} ({args.binary})")
    print(f"start until /health, median of {args.rounds}:")
    print(f"  binary cold (unpacks)   {c:6.2f} s   ratio to venv {c / r:.2f}")
    print(f"  binary warm             {w:6.2f} s   ratio to venv {w / r:.2f}")
    print(f"  venv python -m impasto  {r:6.2f} s   (reference)")
    b, v = statistics.median(ready["binary"]), statistics.median(ready["venv"])
    print(
        f"start until a worker is ready (warm): binary {b:.2f} s, venv {v:.2f} s, ratio {b / v:.2f}"
    )
    b, v = statistics.median(rss["binary"]), statistics.median(rss["venv"])
    print(
        f"resident memory of the process tree, idle worker: binary {b:.0f} MB "
        f"({procs['binary']} processes), venv {v:.0f} MB ({procs['venv']} processes), "
        f"ratio {b / v:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
