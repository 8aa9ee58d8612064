"""Bring an install's source into its staging folder: a hub repo, a URL or a local path.

A hub repo's graphs come before its weights, so a build this machine cannot run is refused
before the big files are fetched; a URL's archive is unpacked; a local file or folder is copied
(never linked: the models dir owns what it holds).
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from impasto import fsnames
from impasto.engine.onnx_external import ProtobufError
from impasto.engine.onnx_ops import GraphOps, peek_graph_ops, read_graph_ops
from impasto.engine.runs_on import Capability, assess, folder_graphs
from impasto.services.archives import extract_archive
from impasto.services.convert import SIDECAR_SUFFIX
from impasto.services.downloads import DownloadError, RemoteFile, fetch, sha256_of
from impasto.services.egress import guarded_client
from impasto.services.hub import HubError, access_hint, list_hub_files, range_reader
from impasto.services.runnable import UnrunnableError, is_weight_file, refusal
from impasto.services.safety import (
    check_file,
    check_free_space,
    check_special,
    check_tree,
    copy_file,
    copy_tree,
)
from impasto.services.sources import disposition_filename
from impasto.services.stage_job import InstallError, StageJob

# A graph file above this size is peeked at (head and tail) rather than fetched before the check.
PEEK_ABOVE = 8 * 1024**2
# An A1111 .yaml beside a checkpoint is a few KB; anything this large is not one.
SIDECAR_MAX_BYTES = 1024**2
# Seconds an install request waits for a URL's server to name its file.
NAME_PROBE_TIMEOUT = 10.0


def stage_source(job: StageJob) -> Path:
    """The source fetched, unpacked or copied under the job's staging folder: a file or a
    folder, not yet checked as a model."""
    job.staging.mkdir(parents=True, exist_ok=True)
    kind = job.source["kind"]
    if kind == "hub":
        return _stage_hub(job)
    return _stage_url(job) if kind == "url" else _stage_path(job)


def _fetch_all(
    job: StageJob, files: list[RemoteFile], into: Path, *, fresh: bool = True, total: int = 0
) -> None:
    """Fetch ``files``; ``fresh`` starts the download's progress, counted against ``total``
    bytes (the sum of ``files`` when 0: a hub repo fetched in two parts counts the whole
    repo from the start, so its bar never goes back)."""
    if fresh:
        job.progress.start("download", total or sum(f.size or 0 for f in files))
        job.progress.expected = job.progress.total
    for remote in files:
        if not fsnames.inside_path(remote.path):  # a listing's or a URL's name, checked again
            raise InstallError(f"{remote.path!r} would land outside the model folder: refused")
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
        cancel=job.cancel,
    )
    files = listing.files
    if src.get("sha256"):
        files = [
            RemoteFile(f.url, f.path, f.size, src["sha256"], f.headers, f.denied)
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
    check_free_space(job.staging, total * (3 if listing.layout == "diffusers" else 1))
    into = job.staging / "files"
    # A resumed install whose branch moved on since: what was fetched is of another commit,
    # and mixing the two would make a model nobody published.
    pinned = job.staging / "commit"
    if pinned.is_file() and pinned.read_text() != listing.commit:
        shutil.rmtree(into, ignore_errors=True)
    pinned.write_text(listing.commit)
    # Graphs and configs first: with external data they are small, and they tell whether this
    # machine can run the model before the weights are fetched. A big graph with its weights
    # inline is only peeked at (its nodes and opsets) with Range requests.
    onnx = listing.layout == "onnx"
    later = [f for f in files if is_weight_file(f.path) or (onnx and _peekable(f))]
    _fetch_all(job, [f for f in files if f not in later], into, total=total)
    if onnx:
        try:
            graphs = folder_graphs(into)
        except ProtobufError as exc:  # a truncated or damaged graph
            raise InstallError(f"{src['repo']}: {exc}") from None
        for remote in later:
            if _peekable(remote):
                graphs[remote.path.split("/")[0]] = _graph_ops(job, remote, into)
        what = f"{src['repo']} (ONNX build)"
        check_runnable(job, assess(graphs) if graphs else None, what, refuse=True)
    _fetch_all(job, later, into, fresh=False)
    return into


def _graph_ops(job: StageJob, remote: RemoteFile, into: Path) -> GraphOps:
    """What a big graph needs, from its head where the server sends ranges, else fetched."""
    try:
        peeked = _peek(remote)
        if peeked is None:  # no Range support: fetch it whole to read it
            _fetch_all(job, [remote], into, fresh=False)
            peeked = read_graph_ops(into / remote.path)
    except ProtobufError as exc:
        raise InstallError(f"{remote.path}: not a readable ONNX model ({exc})") from None
    return peeked


def _peekable(remote: RemoteFile) -> bool:
    """A component graph (not a weight file) big enough that reading only its head pays."""
    return remote.path.endswith("/model.onnx") and (remote.size or 0) > PEEK_ABOVE


def _peek(remote: RemoteFile) -> GraphOps | None:
    try:
        return peek_graph_ops(range_reader(remote), remote.size or 0)
    except (HubError, httpx.HTTPError, ProtobufError, OSError):
        return None


def check_runnable(
    job: StageJob, capability: Capability | None, what: str, *, refuse: bool
) -> None:
    """Refuse (or, forced or local, flag) a model whose graphs this provider cannot run."""
    problem = refusal(capability, job.provider, what)
    if problem and refuse and not job.options.get("force"):
        raise UnrunnableError(problem)
    job.warning = problem


def _on_hub(endpoint: str, url: str) -> bool:
    """Whether ``url`` is under the hub ``endpoint`` (a mirror's prefix: its host may serve
    more)."""
    target, hub = urlsplit(url), urlsplit(endpoint)
    under = hub.path.rstrip("/") + "/"
    same = (target.scheme, target.netloc) == (hub.scheme, hub.netloc)
    return same and target.path.startswith(under)


def _url_access(endpoint: str, token: str | None, url: str) -> tuple[dict[str, str], str]:
    """The headers a URL is fetched with and what a 401/403 from it means.

    A file on the hub (``https://huggingface.co/owner/name/resolve/...``) gets the hub token,
    as the hub's own downloads do; no other host ever sees it.
    """
    if not _on_hub(endpoint, url):
        return {}, (
            "the server wants a login, which Impasto does not send to it: download the file "
            "yourself and install it from its path"
        )
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers(token=token or False, library_name="impasto")
    under = urlsplit(endpoint).path.rstrip("/") + "/"
    parts = [p for p in urlsplit(url).path.removeprefix(under).split("/") if p]
    repo = "/".join(parts[:2]) if len(parts) >= 2 else url
    return dict(headers), access_hint(repo, endpoint, token, gated=True)


def served_filename(url: str, endpoint: str, token: str | None) -> str:
    """The file name the server gives ``url``'s download in its ``Content-Disposition``
    (Civitai's ``/api/download/models/ID`` and many CDNs name files only there); "" when it
    gives none or cannot be reached now (the download says why later).

    A GET, redirects followed, of which only the headers are read: a signed CDN link may
    refuse HEAD.
    """
    headers, _ = _url_access(endpoint, token, url)
    on_hub = _on_hub(endpoint, url)
    try:
        with (
            guarded_client(url, url, timeout=NAME_PROBE_TIMEOUT, trusted=on_hub) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code >= 400:
                return ""
            return disposition_filename(response.headers.get("Content-Disposition", ""))
    except (httpx.HTTPError, DownloadError, OSError):
        return ""


def _stage_url(job: StageJob) -> Path:
    src = job.source
    name = src["filename"]
    headers, denied = _url_access(job.hub_endpoint, job.hub_token, src["url"])
    on_hub = _on_hub(job.hub_endpoint, src["url"])
    try:
        with guarded_client(src["url"], name, timeout=30.0, trusted=on_hub) as client:
            head = client.head(src["url"], headers=headers)
        length = head.headers.get("Content-Length", "") if head.status_code == 200 else ""
    except httpx.HTTPError:
        length = ""
    if length.isdigit():
        if int(length) > job.max_file_size:
            raise InstallError(
                f"{name}: {length} bytes is over the max_file_size limit ({job.max_file_size})"
            )
        check_free_space(job.staging, int(length) * 2)
    size = int(length) if length.isdigit() else None
    sha = job.options.get("sha256") or None
    remote = RemoteFile(src["url"], name, size, sha, headers, denied, on_hub)
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
        check_free_space(job.staging, size * 2)
        target = job.staging / "files"
        shutil.rmtree(target, ignore_errors=True)
        copy_tree(src, target, job.max_file_size, job.cancel, job.link_roots)
        return target
    check_file(src, job.max_file_size)
    check_free_space(job.staging, info.st_size * 2)
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
