"""Build the `impasto` program with Nuitka for the current OS and one flavour.

    python packaging/build.py --flavour cpu        # -> packaging/out/impasto (or impasto.exe)

On Linux the default ``--mode standalone`` writes Nuitka's standalone folder to
``packaging/out/impasto.dist/`` and makes ``packaging/out/impasto`` a link to its executable
(``impasto.bin``: the folder's ``impasto/`` holds the package's data)
(what the .deb and the tarball ship: nothing to unpack at each start); elsewhere, and with
``--mode onefile``, ``packaging/out/impasto`` is one self-unpacking file.

The flavour names the onnxruntime package the binary carries (cpu: onnxruntime,
cuda: onnxruntime-gpu, directml: onnxruntime-directml); exactly that one must be
installed in the building environment, never two at once.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "packaging" / "out"
sys.path.insert(0, str(REPO / "packaging"))
from nuitka_layout import DIST, STANDALONE_EXECUTABLE  # noqa: E402

FLAVOURS = {
    "cpu": "onnxruntime",
    "cuda": "onnxruntime-gpu",
    "directml": "onnxruntime-directml",
}

# Only for converting models and for tests: never in the binary. faker and polyfactory come
# in through litestar's testing helpers and double the build time for nothing.
EXCLUDED = [
    "torch",
    "torchvision",
    "diffusers",
    "optimum",
    "transformers",
    "onnx",
    # The install's graph work (fused attention, clip skip's outputs, int8) is written with
    # impasto.formats.onnx_model; onnxruntime's helpers below would pull in sympy and more.
    "onnxruntime.quantization",
    "onnxruntime.transformers",
    "onnxruntime.tools",
    "sympy",
    "faker",
    "polyfactory",
    "pytest",
    "_pytest",
    "schemathesis",
    "hypothesis",
    "playwright",
    "IPython",
    "matplotlib",
    "tkinter",
    "impasto.*.tests",
    # Optional imports of the runtime's dependencies that a build venv with the dev extras
    # would otherwise compile in: mypy (numpy's typing plugin), pydantic (litestar's plugin,
    # unused), pygments/click/rich (httpx's command line), zstandard (httpx's decoder; Nuitka
    # itself needs it only to compress the payload), hf_xet (huggingface_hub's Xet transfer,
    # unused: installs download with their own resumable fetcher).
    "mypy",
    "mypyc",
    "ast_serialize",
    "pydantic",
    "pydantic_core",
    "pygments",
    "click",
    "rich",
    "zstandard",
    "hf_xet",
    # PyGObject (the `tray-gtk` extra that `make test` installs where its headers are): the
    # binary's tray uses pystray's xorg backend, and Nuitka's gi plugin fails on GioUnix.
    "gi",
    # k-diffusion, scipy and friends are test references only; the engine is numpy.
    "k_diffusion",
    "scipy",
    "torchsde",
    "torchdiffeq",
    # Ray workers are Python processes a node's raylet starts: the `cluster` extra is for pip
    # installs (docs/cluster.md), never compiled into the binary.
    "ray",
    "impasto.worker.ray",
]

# pystray picks its backend by name at run time, so Nuitka cannot see the import.
TRAY_BACKENDS = {"linux": "pystray._xorg", "win32": "pystray._win32", "darwin": "pystray._darwin"}


def platform_key() -> str:
    """linux, win32 or darwin."""
    return "linux" if sys.platform.startswith("linux") else sys.platform


def check_flavour(flavour: str) -> None:
    """Fail unless exactly the flavour's onnxruntime package is installed."""
    installed = []
    for name in FLAVOURS.values():
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        installed.append(name)
    wanted = FLAVOURS[flavour]
    if installed != [wanted]:
        others = [name for name in installed if name != wanted]
        hint = f"pip uninstall -y {' '.join(others)}; " if others else ""
        raise SystemExit(
            f"flavour {flavour!r} needs exactly {wanted} installed, found {installed or 'none'}; "
            f"run: {hint}pip install {wanted}"
        )


def version() -> str:
    """The version of the impasto package being built."""
    from impasto import __version__

    return str(__version__)


def binary_name(mode: str = "onefile") -> str:
    """The executable's file name on this OS, in a onefile build or in the standalone folder."""
    if platform_key() == "win32":
        return "impasto.exe"
    return STANDALONE_EXECUTABLE if mode == "standalone" else "impasto"


def default_mode() -> str:
    """standalone where the packages ship a folder (Linux), onefile elsewhere."""
    return "standalone" if platform_key() == "linux" else "onefile"


def nuitka_command(
    flavour: str, build_dir: Path, build_id: str, mode: str = "onefile"
) -> list[str]:
    """The full Nuitka command line."""
    binary = binary_name(mode)
    command = [
        sys.executable,
        "-m",
        "nuitka",
        f"--mode={mode}",
        f"--output-dir={build_dir}",
        f"--output-filename={binary}",
        "--assume-yes-for-downloads",
        "--lto=no",
        "--include-package=impasto",
        "--include-package=impasto_tray",
        f"--include-module={TRAY_BACKENDS[platform_key()]}",
        # Litestar names this module only as a string in its logging config.
        "--include-module=litestar.logging.standard",
        "--include-package-data=impasto",
        f"--include-data-dir={REPO / 'ui_static'}=impasto/ui_static",
        f"--include-data-dir={REPO / 'models' / 'tiny' / 'sd-tiny'}=impasto/bundled_models/sd-tiny",
        f"--include-data-dir={REPO / 'models' / 'tiny' / 'impasto-shapes'}"
        "=impasto/bundled_models/impasto-shapes",
        f"--include-data-files={REPO / 'models' / 'catalog.toml'}=impasto/model_catalog.toml",
        "--product-name=Impasto",
        f"--product-version={version().split('+')[0].split('.dev')[0]}",
        "--company-name=Impasto",
    ]
    if mode == "onefile":
        command += [
            # A cached extraction folder: the daemon and its workers (the same binary started
            # again) share it, and a killed process leaves nothing new behind. The build id
            # keeps a rebuilt binary from reusing an older build's files.
            f"--onefile-tempdir-spec={{CACHE_DIR}}/impasto/{version()}-{flavour}-{build_id}",
            # The daemon drains its queue and stops its workers on SIGTERM; give it the time.
            "--onefile-child-grace-time=30000",
        ]
    command += [f"--nofollow-import-to={name}" for name in EXCLUDED]
    # Its gi plugin resolves `gi.repository.*` imports even when gi is not followed.
    command.append("--disable-plugins=gi")
    if platform_key() == "win32":
        # Nuitka's default ("force") opens a console window for the whole life of a tray started
        # from the Start menu or at login. "hide" hides such a new console but keeps it, so the
        # tray can still stop its daemon with CTRL_BREAK; a terminal's console is used as is.
        command.append("--windows-console-mode=hide")
        icon = REPO / "packaging" / "windows" / "impasto.ico"
        if icon.exists():
            command.append(f"--windows-icon-from-ico={icon}")
    if platform_key() == "darwin":
        command.append("--macos-app-name=Impasto")
    command.append(str(REPO / "packaging" / "impasto_entry.py"))
    return command


def main(argv: list[str] | None = None) -> int:
    """Build the binary; prints the Nuitka command, its time and the result's size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavour", choices=sorted(FLAVOURS), default="cpu")
    parser.add_argument("--mode", choices=["standalone", "onefile"], default=default_mode())
    parser.add_argument("--dry-run", action="store_true", help="print the command only")
    args = parser.parse_args(argv)
    build_dir = REPO / "build" / f"nuitka-{args.flavour}-{args.mode}"
    build_id = time.strftime("%Y%m%d%H%M%S")
    command = nuitka_command(args.flavour, build_dir, build_id, args.mode)
    print(" ".join(command), flush=True)
    if args.dry_run:
        return 0
    check_flavour(args.flavour)
    started = time.monotonic()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "daemon"), str(REPO / "tray")]))
    result = subprocess.run(command, env=env, check=False)
    if result.returncode:
        return result.returncode
    target = publish(build_dir, args.mode)
    files = [target] if args.mode == "onefile" else list((OUT / DIST).rglob("*"))
    size = sum(f.stat().st_size for f in files if f.is_file()) / 1e6
    print(f"built {target} ({size:.1f} MB) in {(time.monotonic() - started) / 60:.1f} min")
    return 0


def publish(build_dir: Path, mode: str) -> Path:
    """Copy Nuitka's result to packaging/out; returns the path of the executable to run.

    The onefile result and the standalone folder's link have the same path, so a new build
    of either mode replaces the other.
    """
    OUT.mkdir(parents=True, exist_ok=True)
    target = OUT / binary_name()  # the name people run, whichever the mode
    target.unlink(missing_ok=True)
    shutil.rmtree(OUT / DIST, ignore_errors=True)
    if mode == "onefile":
        shutil.copy2(build_dir / binary_name(), target)
        return target
    # Nuitka names the folder after the entry script.
    shutil.copytree(build_dir / "impasto_entry.dist", OUT / DIST, symlinks=True)
    target.symlink_to(Path(DIST) / binary_name(mode))
    return target


if __name__ == "__main__":
    sys.exit(main())
