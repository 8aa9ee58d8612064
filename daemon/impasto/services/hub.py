"""Hugging Face Hub sources: list a repo revision's files and pick the ones a model needs."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, TypeVar

import httpx

from impasto.services.downloads import (
    MAX_RETRY_AFTER,
    RETRIES,
    RETRY_STATUSES,
    InstallCancelled,
    RemoteFile,
    network_problem,
    retry_after,
)
from impasto.services.egress import guarded_client

T = TypeVar("T")

DEFAULT_ENDPOINT = "https://huggingface.co"
COMPONENTS = frozenset(
    {
        "text_encoder",
        "text_encoder_2",
        "unet",
        "vae_decoder",
        "vae_encoder",
        "vae",
        "tokenizer",
        "tokenizer_2",
        "scheduler",
    }
)
ONNX_SUFFIXES = frozenset({".onnx", ".onnx_data", ".data", ".pb", ".json", ".txt"})
DIFFUSERS_SUFFIXES = frozenset({".safetensors", ".json", ".txt"})


class HubError(Exception):
    """The repo, revision or subfolder cannot be used; the message says why."""


@dataclass(frozen=True)
class HubListing:
    """The files to fetch from one repo revision, pinned to its commit."""

    commit: str
    layout: str
    files: list[RemoteFile]


def hub_endpoint(setting: str) -> str:
    """The hub to talk to: the hf_endpoint setting, else HF_ENDPOINT, else huggingface.co."""
    return (setting or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_token(setting: str) -> str | None:
    """The token for private or gated repos: the hf_token setting, else HF_TOKEN."""
    return setting or os.environ.get("HF_TOKEN") or None


def access_hint(repo_id: str, endpoint: str, token: str | None, *, gated: bool) -> str:
    """What a refused read of ``repo_id`` means and what to do about it."""
    page = f"{endpoint}/{repo_id}"
    if gated and token:
        return (
            f"{repo_id} is a gated repo and the account of the token in hf_token / HF_TOKEN has "
            f"no access yet: accept its licence at {page} with that account (some repos' "
            "authors approve each request), then retry"
        )
    if gated:
        return (
            f"{repo_id} is a gated repo: accept its licence at {page}, then set hf_token (or "
            "HF_TOKEN) to an access token of that account and retry"
        )
    if token:
        return (
            f"{repo_id} was not found on {endpoint}, or the token in hf_token / HF_TOKEN cannot "
            "read it: check the repo id and the token's permissions"
        )
    return (
        f"{repo_id} was not found on {endpoint}: check the repo id; a private repo needs "
        "hf_token (or HF_TOKEN) set to a token that can read it"
    )


def _first_line(exc: BaseException) -> str:
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _ask_hub(
    call: Callable[[], T],
    repo_id: str,
    endpoint: str,
    token: str | None,
    cancel: threading.Event | None,
) -> T:
    """``call`` (one request to the hub) retried while the hub answers 429 or 5xx; the
    hub's refusals become HubErrors that say what to do."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    waiter = cancel or threading.Event()
    for attempt in range(RETRIES):
        try:
            return call()
        except RevisionNotFoundError:
            raise
        except GatedRepoError:
            raise HubError(access_hint(repo_id, endpoint, token, gated=True)) from None
        except RepositoryNotFoundError:
            raise HubError(access_hint(repo_id, endpoint, token, gated=False)) from None
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status == 401 and token:
                raise HubError(
                    f"{endpoint} refused the token in hf_token / HF_TOKEN (HTTP 401): it is "
                    f"wrong or revoked; create a new one at {endpoint}/settings/tokens"
                ) from None
            if status not in RETRY_STATUSES or attempt == RETRIES - 1:
                raise HubError(
                    f"{endpoint} did not answer for {repo_id}: {_first_line(exc)}"
                ) from None
            headers = exc.response.headers if exc.response is not None else {}
            delay = retry_after(headers.get("Retry-After"))
            if delay is not None and delay > MAX_RETRY_AFTER:
                raise HubError(
                    f"{endpoint} asks to wait {delay:.0f} s before asking again about {repo_id} "
                    "(HTTP 429, Retry-After): try the install again later"
                ) from None
        except (OSError, httpx.TransportError) as exc:  # requests' and httpx's connection errors
            raise HubError(network_problem(endpoint, exc)) from None
        if waiter.wait(min(0.2 * 2**attempt, 5.0) if delay is None else delay):
            raise InstallCancelled("cancelled")
    raise AssertionError("unreachable")


def _safe_name(name: str, repo_id: str) -> PurePosixPath:
    """A listed file's path, refusing one that would land outside the model folder."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name or "\0" in name:
        raise HubError(
            f"{repo_id} lists a file named {name!r}, which would land outside the model "
            "folder: refused"
        )
    return path


def _wanted(rel: PurePosixPath, suffixes: frozenset[str]) -> bool:
    if rel.parts == ("model_index.json",):
        return True
    if len(rel.parts) < 2 or rel.parts[0] not in COMPONENTS or rel.suffix not in suffixes:
        return False
    # Diffusers folders carry fp16 and non-ema variants beside the main weights; take the main.
    return rel.name.count(".") <= 1 or rel.suffix != ".safetensors"


def list_hub_files(
    repo_id: str,
    revision: str | None,
    subfolder: str,
    *,
    endpoint: str,
    token: str | None,
    cancel: threading.Event | None = None,
) -> HubListing:
    """Ask the hub for ``repo_id`` at ``revision`` and choose the files of the model layout."""
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import RevisionNotFoundError
    from huggingface_hub.utils import build_hf_headers

    api = HfApi(endpoint=endpoint, token=token or False)
    try:
        info = _ask_hub(
            lambda: api.model_info(repo_id, revision=revision, files_metadata=True),
            repo_id,
            endpoint,
            token,
            cancel,
        )
    except RevisionNotFoundError as exc:
        raise HubError(f"revision {revision!r} does not exist in {repo_id}") from exc
    commit = info.sha or revision or "main"
    prefix = PurePosixPath(subfolder.strip("/")) if subfolder.strip("/") else None
    entries: dict[PurePosixPath, Any] = {}
    for sibling in info.siblings or []:
        path = _safe_name(sibling.rfilename, repo_id)
        if prefix is not None:
            if path.parts[: len(prefix.parts)] != prefix.parts:
                continue
            path = PurePosixPath(*path.parts[len(prefix.parts) :])
        entries[path] = sibling
    tiny = {PurePosixPath(n) for n in ("config.json", "diffusion_pytorch_model.safetensors")}
    if PurePosixPath("model_index.json") not in entries and tiny <= set(entries):
        # A lone diffusers model such as TAESD (AutoencoderTiny): its config and weights.
        layout, suffixes = "diffusers-model", DIFFUSERS_SUFFIXES
        entries = {path: entries[path] for path in tiny}
    elif PurePosixPath("model_index.json") not in entries:
        where = f"{repo_id}/{subfolder}" if subfolder else repo_id
        raise HubError(f"{where} has no model_index.json: not a Stable Diffusion pipeline")
    elif PurePosixPath("unet/model.onnx") in entries:
        layout, suffixes = "onnx", ONNX_SUFFIXES
    elif any(p.parts[0] == "unet" and p.suffix == ".safetensors" for p in entries):
        layout, suffixes = "diffusers", DIFFUSERS_SUFFIXES
    else:
        raise HubError(f"{repo_id} has neither unet/model.onnx nor diffusers .safetensors weights")
    headers = build_hf_headers(token=token or False, library_name="impasto")
    # Should the hub refuse a file later on (a token revoked midway), the same advice applies.
    denied = access_hint(repo_id, endpoint, token, gated=True)
    files = []
    for rel, sibling in sorted(entries.items()):
        if layout != "diffusers-model" and not _wanted(rel, suffixes):
            continue
        name = sibling.rfilename
        lfs = sibling.lfs
        url = hf_hub_url(repo_id, name, revision=commit, endpoint=endpoint)
        size = sibling.size
        sha = lfs.sha256 if lfs else None
        files.append(RemoteFile(url, str(rel), size, sha, dict(headers), denied=denied))
    # One HEAD through the resolve endpoint proves the files are reachable before we stage
    # (a gated repo lists its files to anyone, and refuses them to who has not accepted it).
    first = files[0].url
    _ask_hub(
        lambda: get_hf_file_metadata(first, token=token or False), repo_id, endpoint, token, cancel
    )
    return HubListing(commit, layout, files)


def range_reader(remote: RemoteFile, timeout: float = 60.0) -> Callable[[int, int], bytes]:
    """Read ``length`` bytes at ``offset`` of a hub file with an HTTP Range request."""

    def read(offset: int, length: int) -> bytes:
        headers = {**remote.headers, "Range": f"bytes={offset}-"}
        guarded = guarded_client(remote.url, remote.path, timeout=timeout, trusted=remote.on_hub)
        with (
            guarded as client,
            client.stream("GET", remote.url, headers=headers) as response,
        ):
            if response.status_code != 206:
                raise HubError(f"{remote.path}: the hub ignored a Range request")
            out = bytearray()
            for chunk in response.iter_bytes():
                out += chunk
                if len(out) >= length:
                    break
        return bytes(out[:length])

    return read
