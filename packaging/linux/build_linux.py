"""Linux packages of the `impasto` program: a .deb (dpkg-deb) and a per-user tarball.

Usage: python packaging/linux/build_linux.py --binary packaging/out/impasto --out packaging/out

``--binary`` is a onefile executable, or the link to the executable of Nuitka's standalone
folder (packaging/nuitka_layout.py), whose whole folder is then shipped: the .deb puts it in
/opt/impasto/, the tarball carries it as impasto.dist/ for install.sh.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# The tray package draws the icon; the repository's folders are enough to import it.
sys.path[:0] = [str(REPO / "tray"), str(REPO / "daemon"), str(REPO / "packaging")]

from nuitka_layout import DIST, STANDALONE_EXECUTABLE, standalone_folder  # noqa: E402

DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
# Where the .deb puts things; the unit and desktop entry run PROGRAM.
LIBDIR = "opt/impasto"
PROGRAM = "/usr/bin/impasto"


def write_icon(target: Path, size: int = 256) -> Path:
    """The application icon: the tray's idle look as a PNG."""
    from impasto_tray.icons import render
    from impasto_tray.state import DaemonState, Snapshot

    target.parent.mkdir(parents=True, exist_ok=True)
    render(Snapshot(DaemonState.IDLE), size=size).save(target)
    return target


def templated(name: str, program: str) -> str:
    """A file of this folder with @IMPASTO@ filled in: a plain path, which neither the unit nor
    the desktop entry needs to quote (install.sh quotes a user's path for each)."""
    return (HERE / name).read_text().replace("@IMPASTO@", program)


def stage_deb(root: Path, binary: Path, version: str, arch: str) -> Path:
    """Lay out the package tree under ``root``; returns it."""
    lib = root / LIBDIR
    folder = standalone_folder(binary)
    if folder is None:
        lib.mkdir(parents=True)
        shutil.copy2(binary, lib / "impasto")
        executable = "impasto"
    else:  # the standalone folder is the program: its executable beside its libraries
        shutil.copytree(folder, lib, symlinks=True)
        executable = binary.resolve().name
    (lib / executable).chmod(0o755)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "impasto").symlink_to(f"/{LIBDIR}/{executable}")
    unit = root / "usr" / "lib" / "systemd" / "user" / "impasto.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(templated("impasto.service", PROGRAM))
    desktop = root / "usr" / "share" / "applications" / "impasto.desktop"
    desktop.parent.mkdir(parents=True)
    desktop.write_text(templated("impasto.desktop", PROGRAM))
    write_icon(root / "usr" / "share" / "icons" / "hicolor" / "256x256" / "apps" / "impasto.png")
    control = root / "DEBIAN" / "control"
    control.parent.mkdir()
    size_kib = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) // 1024
    control.write_text(
        "Package: impasto\n"
        f"Version: {version}\n"
        f"Architecture: {arch}\n"
        "Maintainer: Impasto developers <impasto@users.noreply.github.com>\n"
        f"Installed-Size: {size_kib}\n"
        "Section: graphics\n"
        "Priority: optional\n"
        "Homepage: https://github.com/impasto/impasto\n"
        "Description: Local Stable Diffusion daemon on ONNX Runtime\n"
        " One binary holding the daemon, its web UI, a CLI and a tray icon.\n"
        " Run the daemon per user: systemctl --user enable --now impasto\n"
    )
    # Models and outputs live in each user's home: removing the package never touches them.
    return root


def build_deb(
    binary: Path, out: Path, version: str, arch: str, work: Path, compression: str = "xz"
) -> Path:
    """Build ``impasto_<version>_<arch>.deb`` in ``out``; ``compression`` is dpkg-deb's
    (the tests, which unpack it at once, take "none": xz of the binary takes a minute)."""
    root = work / "deb-root"
    shutil.rmtree(root, ignore_errors=True)
    stage_deb(root, binary, version, arch)
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"impasto_{version}_{arch}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(root), str(target)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return target


def build_tarball(binary: Path, out: Path, version: str, machine: str) -> Path:
    """Build ``impasto-<version>-linux-<machine>.tar.gz`` with install.sh and uninstall.sh."""
    out.mkdir(parents=True, exist_ok=True)
    name = f"impasto-{version}-linux-{machine}"
    target = out / f"{name}.tar.gz"
    icon = write_icon(out / f".{name}-icon.png")
    folder = standalone_folder(binary)
    members = {
        "install.sh": HERE / "install.sh",
        "uninstall.sh": HERE / "uninstall.sh",
        "impasto.service": HERE / "impasto.service",
        "impasto.desktop": HERE / "impasto.desktop",
        "impasto.png": icon,
    }
    if folder is None:
        members["impasto"] = binary
    else:  # install.sh copies the folder and links its executable
        for file in sorted(folder.rglob("*")):
            if file.is_file() or file.is_symlink():
                members[f"{DIST}/{file.relative_to(folder).as_posix()}"] = file
    executable = {"impasto", f"{DIST}/{STANDALONE_EXECUTABLE}", "install.sh", "uninstall.sh"}
    with tarfile.open(target, "w:gz") as archive:
        for member, source in members.items():
            info = archive.gettarinfo(str(source), f"{name}/{member}")
            runs = member in executable or (info.isfile() and info.mode & 0o111)
            info.mode = 0o755 if runs else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if not info.isfile():  # a link inside the standalone folder
                archive.addfile(info)
                continue
            with source.open("rb") as handle:
                archive.addfile(info, handle)
    icon.unlink()
    return target


def package_version() -> str:
    """The impasto version, in a form dpkg accepts."""
    from impasto import __version__

    return str(__version__).replace("_", "~")


def main(argv: list[str] | None = None) -> int:
    """Build the .deb and the tarball; prints their paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=Path, default=REPO / "packaging" / "out" / "impasto")
    parser.add_argument("--out", type=Path, default=REPO / "packaging" / "out")
    parser.add_argument("--version", default=None)
    args = parser.parse_args(argv)
    if not args.binary.is_file():
        parser.error(f"no binary at {args.binary}: run `make package` first")
    version = args.version or package_version()
    machine = platform.machine()
    work = args.out / "work"
    deb = build_deb(args.binary, args.out, version, DEB_ARCH.get(machine, machine), work)
    shutil.rmtree(work, ignore_errors=True)
    tarball = build_tarball(args.binary, args.out, version, machine)
    print(deb, tarball, sep=os.linesep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
