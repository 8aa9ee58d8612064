"""The blocking steps of one install: fetch into a staging folder, check, convert, move in.

Everything happens under the install's own staging folder in the temp dir; the models dir sees
the model only through one final rename, so an interrupted install never leaves half a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from impasto.engine.onnx_external import ProtobufError
from impasto.engine.onnx_ops import GraphOps, peek_graph_ops, read_graph_ops
from impasto.engine.runs_on import Capability, assess, assess_folder, folder_graphs
from impasto.services.archives import extract_archive
from impasto.services.convert import (
    SIDECAR_SUFFIX,
    convert,
    missing_fp16_converter,
    optimize_fp16,
)
from impasto.services.detect import Detected, detect_file, detect_folder
from impasto.services.downloads import RemoteFile, fetch, sha256_of
from impasto.services.hub import HubError, list_hub_files, range_reader
from impasto.services.optimize_stage import optimize_folder
from impasto.services.runnable import UnrunnableError, is_weight_file, refusal
from impasto.services.safety import check_file, check_special, check_tree, copy_file, copy_tree

# Free space wanted beyond the files themselves, for the database, logs and rounding.
SPACE_MARGIN = 256 * 1024**2
# A graph file above this size is peeked at (head and tail) rather than fetched before the check.
PEEK_ABOVE = 8 * 1024**2
# An A1111 .yaml beside a checkpoint is a few KB; anything this large is not one.
SIDECAR_MAX_BYTES = 1024**2


class InstallError(Exception):
    """The install cannot complete; the message says why and what to do."""


@dataclass
class Progress:
    """Shared between the install thread (writer) and the event ticker (reader)."""

    stage: str = "queued"
    done: int = 0
    total: int = 0
    file: str = ""
    fetched: int = 0  # bytes on disk of the download, kept across stages
    expected: int = 0  # the download's total size where the source says it

    def start(self, stage: str, total: int = 0) -> None:
        self.stage, self.done, self.total, self.file = stage, 0, total, ""

    def add(self, count: int) -> None:
        self.done += count
        self.fetched += count


@dataclass
class StageJob:
    """Everything the blocking steps of one install need."""

    install_id: str
    model_id: str
    source: dict[str, Any]
    options: dict[str, Any]
    staging: Path
    models_dir: Path
    max_file_size: int
    hub_endpoint: str
    hub_token: str | None
    provider: str = ""  # the workers' execution provider, for the graph check
    # Where a local folder's symbolic links may lead (the install_roots setting; empty:
    # anywhere); None refuses every link.
    link_roots: tuple[Path, ...] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Progress = field(default_factory=Progress)
    warning: str = ""  # why the installed model cannot run here, when it cannot


@dataclass(frozen=True)
class Installed:
    """What landed in the models dir."""

    path: Path
    detected: Detected
    size: int
    hash: str


def check_space(folder: Path, needed: int) -> None:
    """Refuse to start when ``folder``'s disk has less than ``needed`` bytes (plus a margin)."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed + SPACE_MARGIN > free:
        raise InstallError(
            f"not enough free disk space in {folder}: the install needs about "
            f"{(needed + SPACE_MARGIN) / 1024**3:.1f} GiB and {free / 1024**3:.1f} GiB is free"
        )


def _fetch_all(job: StageJob, files: list[RemoteFile], into: Path, *, fresh: bool = True) -> None:
    if fresh:
        job.progress.start("download", sum(f.size or 0 for f in files))
        job.progress.expected = job.progress.total
    for remote in files:
        job.progress.file = remote.path
        dest = into / remote.path
        part = dest.with_name(dest.name + ".part")
        for earlier in (dest, part):  # what a previous run already fetched counts as done
            if earlier.exists():
                job.progress.add(earlier.stat().st_size)
        fetch(
            remote,
            into / remote.path,
            max_size=job.max_file_size,
            progress=job.progress.add,
            cancel=job.cancel,
        )


def _stage_hub(job: StageJob) -> Path:
    src = job.source
    listing = list_hub_files(
        src["repo"],
        src.get("revision") or None,
        src.get("subfolder") or "",
        endpoint=job.hub_endpoint,
        token=job.hub_token,
    )
    files = listing.files
    if src.get("sha256"):
        files = [
            RemoteFile(f.url, f.path, f.size, src["sha256"], f.headers)
            if f.path == "model_index.json"
            else f
            for f in files
        ]
    for remote in files:
        if remote.size is not None and remote.size > job.max_file_size:
            raise InstallError(
                f"{remote.path}: {remote.size} bytes is over the max_file_size limit "
                f"({job.max_file_size})"
            )
    total = sum(f.size or 0 for f in files)
    check_space(job.staging, total * (3 if listing.layout == "diffusers" else 1))
    into = job.staging / "files"
    # Graphs and configs first: with external data they are small, and they tell whether this
    # machine can run the model before the weights are fetched. A big graph with its weights
    # inline is only peeked at (its nodes and opsets) with Range requests.
    onnx = listing.layout == "onnx"
    later = [f for f in files if is_weight_file(f.path) or (onnx and _peekable(f))]
    _fetch_all(job, [f for f in files if f not in later], into)
    job.progress.total = job.progress.expected = total
    if onnx:
        graphs = folder_graphs(into)
        for remote in later:
            if _peekable(remote):
                peeked = _peek(remote)
                if peeked is None:  # no Range support: fetch it whole to read it
                    _fetch_all(job, [remote], into, fresh=False)
                    peeked = read_graph_ops(into / remote.path)
                graphs[remote.path.split("/")[0]] = peeked
        what = f"{src['repo']} (ONNX build)"
        _check_runnable(job, assess(graphs) if graphs else None, what, refuse=True)
    _fetch_all(job, later, into, fresh=False)
    return into


def _peekable(remote: RemoteFile) -> bool:
    """A component graph (not a weight file) big enough that reading only its head pays."""
    return remote.path.endswith("/model.onnx") and (remote.size or 0) > PEEK_ABOVE


def _peek(remote: RemoteFile) -> GraphOps | None:
    try:
        return peek_graph_ops(range_reader(remote), remote.size or 0)
    except (HubError, httpx.HTTPError, ProtobufError, OSError):
        return None


def _check_runnable(
    job: StageJob, capability: Capability | None, what: str, *, refuse: bool
) -> None:
    """Refuse (or, forced or local, flag) a model whose graphs this provider cannot run."""
    problem = refusal(capability, job.provider, what)
    if problem and refuse and not job.options.get("force"):
        raise UnrunnableError(problem)
    job.warning = problem


def _stage_url(job: StageJob) -> Path:
    src = job.source
    name = src["filename"]
    try:
        head = httpx.head(src["url"], follow_redirects=True, timeout=30.0)
        length = head.headers.get("Content-Length", "")
    except httpx.HTTPError:
        length = ""
    if length.isdigit():
        if int(length) > job.max_file_size:
            raise InstallError(
                f"{name}: {length} bytes is over the max_file_size limit ({job.max_file_size})"
            )
        check_space(job.staging, int(length) * 2)
    size = int(length) if length.isdigit() else None
    sha = job.options.get("sha256") or None
    remote = RemoteFile(src["url"], name, size, sha)
    _fetch_all(job, [remote], job.staging / "download")
    download = job.staging / "download" / name
    if zipfile.is_zipfile(download) or _is_tar(download):
        job.progress.start("extract")
        files = job.staging / "files"
        shutil.rmtree(files, ignore_errors=True)
        limit = job.max_file_size
        extract_archive(download, files, limit, limit * 8)
        return _model_root(files)
    return download


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _model_root(folder: Path) -> Path:
    """The folder holding model_index.json: the top, or the one folder an archive wraps it in."""
    if (folder / "model_index.json").is_file():
        return folder
    children = [p for p in folder.iterdir() if p.is_dir()]
    if len(children) == 1 and (children[0] / "model_index.json").is_file():
        return children[0]
    raise InstallError("the archive holds no model_index.json at its top or one folder down")


def _stage_path(job: StageJob) -> Path:
    src = Path(job.source["path"])
    job.progress.start("copy")
    # lstat only: a FIFO, device or socket is refused before anything opens it.
    info = check_special(src)
    if stat.S_ISDIR(info.st_mode):
        size = check_tree(src, job.max_file_size, job.link_roots)
        check_space(job.staging, size * 2)
        target = job.staging / "files"
        shutil.rmtree(target, ignore_errors=True)
        copy_tree(src, target, job.max_file_size, job.cancel, job.link_roots)
        return target
    check_file(src, job.max_file_size)
    check_space(job.staging, info.st_size * 2)
    # The name the user gave: a link's target may be a cache blob named by its hash.
    target = job.staging / "files" / (job.source.get("filename") or src.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    copy_file(src, target, job.max_file_size, job.cancel)
    expected = str(job.options.get("sha256") or "")
    if expected and (digest := sha256_of(target)) != expected:
        raise InstallError(f"{src.name}: sha256 mismatch (expected {expected}, got {digest})")
    sidecar = src.with_suffix(SIDECAR_SUFFIX)
    if os.path.lexists(sidecar):
        # A1111's config beside the checkpoint says what its tensors cannot (v-prediction).
        copy_file(sidecar, target.with_suffix(SIDECAR_SUFFIX), SIDECAR_MAX_BYTES, job.cancel)
    return target


def _tree_hash(root: Path) -> str:
    """sha256 over each file's relative path and sha256: one id for a whole folder."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(root).as_posix()}\0{sha256_of(path)}\n".encode())
    return digest.hexdigest()


def _hub_env(job: StageJob) -> dict[str, str]:
    """What the converter child needs to fetch a single file's configs from the same hub."""
    # Its own cache under the staging folder: fetched configs go when the install ends.
    env = {"HF_ENDPOINT": job.hub_endpoint, "HF_HUB_CACHE": str(job.staging / "hf-cache")}
    if job.hub_token:
        env["HF_TOKEN"] = job.hub_token
    return env


def _convert(job: StageJob, source: Path) -> Path:
    if not job.options.get("convert", True):
        raise InstallError("this model needs converting to ONNX; retry with convert enabled")
    job.progress.start("convert")
    out = job.staging / "onnx"
    shutil.rmtree(out, ignore_errors=True)
    log = job.staging / "convert.log"
    convert(
        source,
        out,
        cancel=job.cancel,
        log=log,
        config=job.options.get("config") or "",
        env=_hub_env(job),
    )
    if job.options.get("precision") == "fp16":
        job.progress.start("optimize")
        optimize_fp16(out, cancel=job.cancel, log=log)
    return out


def _match_precision(job: StageJob, folder: Path, precision: str) -> str:
    """Turn a ready fp32 ONNX folder to fp16 when the request asked for fp16; "" when the
    folder is what was asked, else why it stays as it is (the install's warning)."""
    asked = str(job.options.get("precision") or "") if job.options.get("precision_asked") else ""
    if asked == "fp32" and precision == "fp16":
        return "precision fp32 not applied: the model's weights are fp16 (they are not widened)"
    if asked != "fp16" or precision != "fp32":
        return ""
    problem = missing_fp16_converter()
    if problem:
        return f"precision fp16 not applied, the model stays fp32: {problem}"
    job.progress.start("convert")
    optimize_fp16(folder, cancel=job.cancel, log=job.staging / "convert.log")
    return ""


def prepare(job: StageJob) -> tuple[Path, Detected]:
    """Fetch, check and (if needed) convert; returns the ready folder or file and what it is."""
    job.staging.mkdir(parents=True, exist_ok=True)
    kind = job.source["kind"]
    ready = (
        _stage_hub(job) if kind == "hub" else _stage_url(job) if kind == "url" else _stage_path(job)
    )
    job.progress.start("verify")
    converted = False
    try:
        if ready.is_file():
            check_file(ready, job.max_file_size)
            detected = detect_file(ready)
            if detected.type == "checkpoint":
                ready, converted = _convert(job, ready), True
                detected = detect_folder(ready)
        else:
            check_tree(ready, job.max_file_size)
            detected = detect_folder(ready)
            if detected.layout == "diffusers":
                ready, converted = _convert(job, ready), True
                check_tree(ready, job.max_file_size)
                detected = detect_folder(ready)
    except ValueError as exc:
        raise InstallError(str(exc)) from exc
    unmet = ""
    if ready.is_dir() and detected.layout == "onnx" and not converted:
        unmet = _match_precision(job, ready, detected.precision)
        detected = detect_folder(ready)
    if ready.is_dir() and detected.layout == "onnx":
        job.progress.start("optimize")
        optimize_folder(
            ready,
            model_id=job.model_id,
            provider=job.provider,
            precision=str(job.options.get("precision") or ""),
            unet_precision=detected.precision,
            cancel=job.cancel,
            log=job.staging / "optimize.log",
        )
        detected = detect_folder(ready)  # int8 is read from the graph
    if ready.is_dir() and not job.warning:
        _check_runnable(job, assess_folder(ready), job.model_id, refuse=False)
    job.warning = "; ".join(filter(None, [job.warning, unmet]))
    if ready.is_dir() and detected.type == "checkpoint":
        from impasto.engine import ModelFolderError, open_model_folder
        from impasto.engine.model_folder import is_refiner_folder, open_refiner_folder

        opener = open_refiner_folder if is_refiner_folder(ready) else open_model_folder
        try:
            opener(ready)  # the engine's own checks: components, external data paths
        except ModelFolderError as exc:
            raise InstallError(f"not a usable ONNX model: {exc}") from exc
        _split_for_deepcache(ready)
    return ready, detected


def _split_for_deepcache(folder: Path) -> None:
    """Write the UNet's DeepCache graphs now, so the first cached request does not wait."""
    from impasto.engine.deepcache import DeepCacheError, split_unet

    # A UNet that cannot be split still runs; a request asking for DeepCache is told why.
    with contextlib.suppress(DeepCacheError):
        split_unet(folder / "unet" / "model.onnx")


def finalize(job: StageJob, ready: Path, detected: Detected) -> Installed:
    """Move the checked model into the models dir with one rename."""
    final = job.models_dir / job.model_id
    if final.exists():
        raise InstallError(f"{final} already exists; remove the model first")
    if ready.is_file():
        package = job.staging / "package"
        shutil.rmtree(package, ignore_errors=True)
        package.mkdir()
        ready = ready.replace(package / ready.name)
        ready_root, digest = package, sha256_of(ready)
        inner: Path | None = final / ready.name
    else:
        ready_root, digest, inner = ready, _tree_hash(ready), None
    size = sum(p.stat().st_size for p in ready_root.rglob("*") if p.is_file())
    job.models_dir.mkdir(parents=True, exist_ok=True)
    if os.stat(ready_root).st_dev == os.stat(job.models_dir).st_dev:
        ready_root.rename(final)
    else:
        # Another filesystem: copy beside the target under a dot-name, then rename in one step.
        partial = job.models_dir / f".{job.model_id}.{job.install_id}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(ready_root, partial)
        partial.rename(final)
    return Installed(inner or final, detected, size, digest)
