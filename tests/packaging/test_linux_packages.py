"""The .deb and the per-user tarball: files land where the unit and desktop entry expect them."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "packaging" / "linux"))

import build_linux  # noqa: E402
from nuitka_layout import STANDALONE_EXECUTABLE, standalone_folder  # noqa: E402

from tests.tools import may_install_into_the_host, require  # noqa: E402
from tests.tray.test_platforms import exec_arguments  # noqa: E402


@pytest.fixture(autouse=True)
def _dpkg_tools() -> None:
    require("dpkg-deb", "dpkg")


@pytest.fixture
def fake_binary(tmp_path: Path) -> Path:
    """A stand-in for the Nuitka binary that says which arguments it got."""
    binary = tmp_path / "impasto"
    binary.write_text('#!/bin/sh\necho "fake impasto $*"\n')
    binary.chmod(0o755)
    return binary


def entry(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()[1:]
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_the_deb_has_metadata_and_its_files_point_at_each_other(
    fake_binary: Path, tmp_path: Path
) -> None:
    deb = build_linux.build_deb(fake_binary, tmp_path / "out", "1.2.3", "amd64", tmp_path / "w")
    assert deb.name == "impasto_1.2.3_amd64.deb"
    info = subprocess.run(["dpkg-deb", "-I", str(deb)], capture_output=True, text=True).stdout
    assert "Package: impasto" in info and "Version: 1.2.3" in info
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True).stdout
    assert "root/root" in listing and "./opt/impasto/impasto" in listing
    assert "./usr/bin/impasto -> /opt/impasto/impasto" in listing

    root = tmp_path / "root"
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    binary = root / "opt" / "impasto" / "impasto"
    assert os.access(binary, os.X_OK)
    assert os.readlink(root / "usr" / "bin" / "impasto") == "/opt/impasto/impasto"
    unit = (root / "usr/lib/systemd/user/impasto.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert exec_start == "ExecStart=/usr/bin/impasto serve"
    desktop = entry(root / "usr/share/applications/impasto.desktop")
    assert shlex.split(desktop["Exec"]) == ["/usr/bin/impasto", "tray"]
    assert (root / f"usr/share/icons/hicolor/256x256/apps/{desktop['Icon']}.png").is_file()
    # The symlink's target inside the unpacked tree is the binary, which runs.
    target = root / os.readlink(root / "usr" / "bin" / "impasto").lstrip("/")
    assert subprocess.run([target, "version"], capture_output=True, text=True).stdout == (
        "fake impasto version\n"
    )


def test_the_tarball_installs_per_user_and_uninstall_keeps_outputs(
    fake_binary: Path, tmp_path: Path
) -> None:
    tarball = build_linux.build_tarball(fake_binary, tmp_path / "out", "1.2.3", "x86_64")
    with tarfile.open(tarball) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    folder = tmp_path / "unpacked" / "impasto-1.2.3-linux-x86_64"
    home = tmp_path / "home"
    env = {"HOME": str(home), "PATH": os.environ["PATH"]}
    subprocess.run(["sh", str(folder / "install.sh")], env=env, check=True, capture_output=True)

    command = home / ".local" / "bin" / "impasto"
    result = subprocess.run([command, "serve"], capture_output=True, text=True)
    assert result.stdout == "fake impasto serve\n"
    unit = entry(home / ".config/systemd/user/impasto.service")
    assert shlex.split(unit["ExecStart"]) == [str(command), "serve"]
    desktop = entry(home / ".local/share/applications/impasto.desktop")
    assert exec_arguments(desktop["Exec"]) == [str(command), "tray"]

    outputs = home / ".local" / "share" / "impasto" / "outputs"
    outputs.mkdir(parents=True)
    (outputs / "keep.png").write_bytes(b"png")
    uninstall = home / ".local" / "lib" / "impasto" / "uninstall.sh"
    subprocess.run(["sh", str(uninstall)], env=env, check=True, capture_output=True)
    assert not command.exists() and not (home / ".local/lib/impasto").exists()
    assert not (home / ".config/systemd/user/impasto.service").exists()
    assert (outputs / "keep.png").is_file()


def unpacked_tarball(binary: Path, tmp_path: Path) -> Path:
    tarball = build_linux.build_tarball(binary, tmp_path / "out", "1.2.3", "x86_64")
    with tarfile.open(tarball) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    return tmp_path / "unpacked" / "impasto-1.2.3-linux-x86_64"


# A home a user may have: spaces, an apostrophe, a dollar, a percent; and worse.
ODD_HOMES = ["home dir 100%", "home of Ann O'Neil $HOME 100%", 'odd \\ "quoted" & | ; `x`']


@pytest.mark.parametrize("name", ODD_HOMES)
def test_the_tarball_installs_into_a_home_with_odd_characters(
    fake_binary: Path, tmp_path: Path, name: str
) -> None:
    folder = unpacked_tarball(fake_binary, tmp_path)
    home = tmp_path / name
    env = {"HOME": str(home), "PATH": os.environ["PATH"]}
    subprocess.run(["sh", str(folder / "install.sh")], env=env, check=True, capture_output=True)
    command = home / ".local" / "bin" / "impasto"
    desktop = home / ".local/share/applications/impasto.desktop"
    assert exec_arguments(entry(desktop)["Exec"]) == [str(command), "tray"]
    validate = shutil.which("desktop-file-validate")
    if validate is not None:
        check = subprocess.run([validate, str(desktop)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    unit = home / ".config/systemd/user/impasto.service"
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:  # it checks that the command exists and is executable
        check = subprocess.run(
            [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True
        )
        assert check.returncode == 0 and "impasto" not in check.stderr, check.stderr
    exec_start = entry(unit)["ExecStart"]
    words = exec_start.split(" ", 1)
    if words[0] != "/usr/bin/env":  # a path systemd accepts as an executable's name: literal
        assert exec_start == f'"{command}" serve'.replace("%", "%%")


def test_uninstall_removes_the_prefix_it_was_installed_into_and_nothing_else(
    fake_binary: Path, tmp_path: Path
) -> None:
    folder = unpacked_tarball(fake_binary, tmp_path)
    home = tmp_path / "home"
    prefix = tmp_path / "opt dir"
    env = {"HOME": str(home), "PATH": os.environ["PATH"]}
    # An `impasto` that pip put in ~/.local/bin is not this install's to remove.
    pip_script = home / ".local" / "bin" / "impasto"
    pip_script.parent.mkdir(parents=True)
    pip_script.write_text("#!/bin/sh\n")
    install_env = {**env, "PREFIX": str(prefix)}
    subprocess.run(["sh", str(folder / "install.sh")], env=install_env, check=True)
    assert (prefix / "bin" / "impasto").is_symlink()
    outputs = home / ".local" / "share" / "impasto" / "outputs"
    outputs.mkdir(parents=True)
    (outputs / "keep.png").write_bytes(b"png")
    # Run as the docs say, without PREFIX: it removes the install it belongs to.
    uninstall = prefix / "lib" / "impasto" / "uninstall.sh"
    subprocess.run(["sh", str(uninstall)], env=env, check=True, capture_output=True)
    assert not (prefix / "lib" / "impasto").exists()
    assert not os.path.lexists(prefix / "bin" / "impasto")
    assert pip_script.read_text() == "#!/bin/sh\n"
    assert (outputs / "keep.png").is_file()

    subprocess.run(["sh", str(folder / "install.sh")], env=env, check=True, capture_output=True)
    logs = home / ".local" / "state" / "impasto" / "log"
    logs.mkdir(parents=True)
    (home / ".config" / "impasto").mkdir(parents=True)
    uninstall = home / ".local" / "lib" / "impasto" / "uninstall.sh"
    subprocess.run(["sh", str(uninstall), "--purge"], env=env, check=True, capture_output=True)
    for kept in ["share/impasto", "state/impasto", "lib/impasto", "bin/impasto"]:
        assert not os.path.lexists(home / ".local" / kept), kept
    assert not (home / ".config" / "impasto").exists()


REAL_BINARY = REPO / "packaging" / "out" / "impasto"
INSTALLED = ["/opt/impasto", "/usr/bin/impasto"]


def as_root() -> list[str]:
    """The prefix that runs a command as root here: none for root, else passwordless sudo."""
    if os.geteuid() == 0:
        return []
    sudo = shutil.which("sudo")
    if sudo is None or subprocess.run([sudo, "-n", "true"], capture_output=True).returncode:
        pytest.fail("dpkg -i needs root or passwordless sudo", pytrace=False)
    return [sudo, "-n"]


def test_the_deb_installs_with_dpkg_where_its_unit_and_entry_expect(
    fake_binary: Path, tmp_path: Path
) -> None:
    may_install_into_the_host()
    systemd_analyze = require("systemd-analyze", "systemd")
    desktop_file_validate = require("desktop-file-validate", "desktop-file-utils")
    root = as_root()
    status = subprocess.run(["dpkg-query", "-W", "impasto"], capture_output=True, text=True)
    assert status.returncode != 0, "an impasto package is already installed here; not touching it"
    # The real binary when `make package` (or CI) built it, else the stand-in.
    binary = REAL_BINARY if REAL_BINARY.is_file() else fake_binary
    work = tmp_path / "w"
    deb = build_linux.build_deb(binary, tmp_path / "out", "1.2.3", "amd64", work, "none")
    subprocess.run([*root, "dpkg", "-i", str(deb)], check=True, capture_output=True)
    try:
        listed = subprocess.run(["dpkg", "-L", "impasto"], capture_output=True, text=True).stdout
        for path in INSTALLED:
            assert path in listed.split("\n") and os.access(path, os.X_OK), path
        # A onefile binary is installed as `impasto`; a standalone folder keeps its own name.
        executable = "impasto" if standalone_folder(binary) is None else STANDALONE_EXECUTABLE
        assert os.path.realpath("/usr/bin/impasto") == f"/opt/impasto/{executable}"
        assert os.path.isfile("/opt/impasto/" + executable)
        unit = Path("/usr/lib/systemd/user/impasto.service")
        exec_start = next(
            line for line in unit.read_text().splitlines() if line.startswith("ExecStart=")
        )
        command = shlex.split(exec_start.removeprefix("ExecStart="))
        assert os.access(command[0], os.X_OK), command
        # systemd's own check fails on a unit whose command is missing or not executable.
        check = subprocess.run(
            [systemd_analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True
        )
        assert check.returncode == 0 and "impasto" not in check.stderr, check.stderr
        desktop = entry(Path("/usr/share/applications/impasto.desktop"))
        assert os.access(shlex.split(desktop["Exec"])[0], os.X_OK)
        icon = Path(f"/usr/share/icons/hicolor/256x256/apps/{desktop['Icon']}.png")
        assert icon.is_file() and icon.read_bytes()[:4] == b"\x89PNG"
        subprocess.run(
            [desktop_file_validate, "/usr/share/applications/impasto.desktop"], check=True
        )
        env = {"HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
        version = subprocess.run(["impasto", "version"], env=env, capture_output=True, text=True)
        assert version.returncode == 0 and "impasto" in version.stdout, version
    finally:
        subprocess.run([*root, "dpkg", "--purge", "impasto"], check=True, capture_output=True)
    for path in [*INSTALLED, "/usr/lib/systemd/user/impasto.service"]:
        assert not os.path.lexists(path), path


def test_the_deb_and_tarball_ship_the_whole_standalone_folder(tmp_path: Path) -> None:
    folder = tmp_path / "out" / "impasto.dist"
    folder.mkdir(parents=True)
    executable = folder / STANDALONE_EXECUTABLE
    executable.write_text(
        '#!/bin/sh\nhere=$(dirname "$(readlink -f "$0")")\n'
        'echo "fake impasto $* $(cat "$here/libfake.so")"\n'
    )
    executable.chmod(0o755)
    (folder / "impasto").mkdir()  # the package's data, as Nuitka lays it out
    (folder / "impasto" / "model_catalog.toml").write_text("")
    (folder / "libfake.so").write_text("with-its-libraries")
    (folder / "libfake.so.1").symlink_to("libfake.so")
    (folder / "share").mkdir()
    (folder / "share" / "index.html").write_text("<html></html>")
    binary = tmp_path / "out" / "impasto"
    binary.symlink_to(f"impasto.dist/{STANDALONE_EXECUTABLE}")  # what packaging/build.py leaves

    deb = build_linux.build_deb(binary, tmp_path / "deb", "1.2.3", "amd64", tmp_path / "w")
    root = tmp_path / "root"
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    program = root / "usr" / "bin" / "impasto"
    assert os.readlink(program) == f"/opt/impasto/{STANDALONE_EXECUTABLE}"
    program = root / "opt" / "impasto" / STANDALONE_EXECUTABLE
    assert (root / "opt" / "impasto" / "share" / "index.html").is_file()
    assert os.readlink(root / "opt" / "impasto" / "libfake.so.1") == "libfake.so"
    run = subprocess.run([program, "version"], capture_output=True, text=True)
    assert run.stdout == "fake impasto version with-its-libraries\n"

    tarball = build_linux.build_tarball(binary, tmp_path / "tar", "1.2.3", "x86_64")
    with tarfile.open(tarball) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    unpacked = tmp_path / "unpacked" / "impasto-1.2.3-linux-x86_64"
    assert not (unpacked / "impasto").exists()  # no onefile beside the folder
    home = tmp_path / "home"
    env = {"HOME": str(home), "PATH": os.environ["PATH"]}
    subprocess.run(["sh", str(unpacked / "install.sh")], env=env, check=True, capture_output=True)
    command = home / ".local" / "bin" / "impasto"
    run = subprocess.run([command, "serve"], capture_output=True, text=True)
    assert run.stdout == "fake impasto serve with-its-libraries\n"
    lib = home / ".local" / "lib" / "impasto"
    assert (lib / "impasto.dist" / "share" / "index.html").is_file()
    subprocess.run(["sh", str(lib / "uninstall.sh")], env=env, check=True, capture_output=True)
    assert not command.exists() and not lib.exists()


def test_a_relative_prefix_installs_links_that_work_from_anywhere(
    fake_binary: Path, tmp_path: Path
) -> None:
    folder = unpacked_tarball(fake_binary, tmp_path)
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    env = {"HOME": str(home), "PATH": os.environ["PATH"], "PREFIX": "apps"}
    subprocess.run(["sh", str(folder / "install.sh")], env=env, cwd=work, check=True)
    command = work / "apps" / "bin" / "impasto"
    result = subprocess.run([command, "serve"], capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout == "fake impasto serve\n"
    desktop = entry(home / ".local/share/applications/impasto.desktop")
    assert exec_arguments(desktop["Exec"]) == [str(command), "tray"]
    uninstall = work / "apps" / "lib" / "impasto" / "uninstall.sh"
    subprocess.run(["sh", str(uninstall)], env={**env, "PREFIX": ""}, check=True, cwd=tmp_path)
    assert not os.path.lexists(command) and not (work / "apps" / "lib" / "impasto").exists()
