"""Where Impasto keeps things: platformdirs locations unless settings override them."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from impasto.settings import APP_NAME, Settings


@dataclass(frozen=True)
class Paths:
    """Resolved folders and files of one daemon instance."""

    data_dir: Path
    runtime_dir: Path
    log_dir: Path
    output_dir: Path
    models_dir: Path
    temp_dir: Path
    uploads_dir: Path
    database: Path
    socket: Path
    discovery_file: Path

    def in_use(self) -> dict[str, Path]:
        """What each path setting stands for here, its platform default when it is empty."""
        return {
            "data_dir": self.data_dir,
            "runtime_dir": self.runtime_dir,
            "log_dir": self.log_dir,
            "output_dir": self.output_dir,
            "models_dir": self.models_dir,
            "temp_dir": self.temp_dir,
            "socket_path": self.socket,
        }

    def folders(self) -> list[tuple[str, Path, bool]]:
        """Every folder in the order ``create`` makes them: the setting that places it, the
        folder, and whether it is private to the user (made 0700)."""
        # The database, pictures (their prompts in their text), uploads and logs are the
        # user's own: their folders are made 0700. Models may be shared; a folder that
        # exists keeps its mode (the user chose it).
        made = [
            (setting, folder, setting != "models_dir")
            for setting, folder in self.in_use().items()
            if setting != "socket_path"
        ]
        made.append(("data_dir", self.uploads_dir, True))
        if sys.platform != "win32":  # a socket_path elsewhere: as private as the runtime dir
            made.append(("socket_path", self.socket.parent, True))
        return made

    def create(self) -> None:
        """Make every folder; FolderError names the setting of one that cannot be made."""
        for setting, folder, private in self.folders():
            try:
                folder.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
                if folder == self.runtime_dir and sys.platform != "win32":
                    os.chmod(folder, 0o700)
            except OSError as exc:
                raise FolderError(setting, folder, exc.strerror or str(exc)) from None


class FolderError(Exception):
    """A folder of the daemon cannot be made (under a file, on a read-only disk); ``setting``
    names the setting that places it."""

    def __init__(self, setting: str, folder: Path, reason: str) -> None:
        super().__init__(f"{setting} {folder}: the folder cannot be made ({reason})")
        self.setting = setting
        self.folder = folder
        self.reason = reason


def _runtime_default() -> Path:
    if sys.platform == "win32":
        return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "run"
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and Path(base).is_dir():
        return Path(base) / APP_NAME
    # No per-user runtime dir (e.g. macOS, containers): a private folder under the temp dir.
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"{APP_NAME}-{os.getuid()}"


def resolve_paths(settings: Settings) -> Paths:
    """Apply the settings' overrides over the platform defaults."""
    data = Path(settings.data_dir or platformdirs.user_data_dir(APP_NAME, appauthor=False))
    runtime = Path(settings.runtime_dir) if settings.runtime_dir else _runtime_default()
    logs = Path(settings.log_dir or platformdirs.user_log_dir(APP_NAME, appauthor=False))
    temp = Path(settings.temp_dir) if settings.temp_dir else data / "temp"
    return Paths(
        data_dir=data,
        runtime_dir=runtime,
        log_dir=logs,
        output_dir=Path(settings.output_dir) if settings.output_dir else data / "outputs",
        models_dir=Path(settings.models_dir) if settings.models_dir else data / "models",
        temp_dir=temp,
        uploads_dir=data / "uploads",
        database=data / "impasto.db",
        socket=Path(settings.socket_path) if settings.socket_path else runtime / "impasto.sock",
        discovery_file=runtime / "daemon.json",
    )
