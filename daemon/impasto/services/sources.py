"""Turn what a user typed (a catalog name, hub repo id, URL or path) into an install source."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from email.message import Message
from email.utils import collapse_rfc2231_value
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from impasto import fsnames
from impasto.services.errors import FieldError
from impasto.services.known import KnownModel, NoVariantError, resolve_variant
from impasto.services.safety import UnsafeContentError, check_special, slugify

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# A hub source as describe_source writes it (and as users paste it back): hf://owner/name,
# then optionally @revision and /subfolder. "hf:owner/name" works too.
_HUB_SOURCE = re.compile(
    r"^hf:(?://)?(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*)"
    r"(?:@(?P<revision>[^/@]+))?(?:/(?P<subfolder>.+))?$"
)
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
MODEL_SUFFIXES = (*ARCHIVE_SUFFIXES, ".safetensors", ".onnx")
# A URL's file name is staged with ".part" and ".part.etag" beside it: room for those.
URL_NAME_MAX = fsnames.NAME_MAX - len(".part.etag")


def url_filename(path: str) -> str:
    """The file name a URL's path ends in, decoded, as a plain name in one folder ("download"
    when nothing usable is left)."""
    return plain_filename(unquote(PurePosixPath(path).name)) or "download"


def disposition_filename(header: str) -> str:
    """The file name a ``Content-Disposition`` header gives (RFC 6266: ``filename*``, RFC
    5987-encoded, before ``filename``), as a plain name; "" when it gives none.

    What Civitai's ``/api/download/models/ID`` links and many CDNs name their files by.
    """
    message = Message()
    message["Content-Disposition"] = header
    plain, encoded = "", ""
    for key, value in message.get_params([], header="content-disposition")[1:]:
        if key != "filename":
            continue
        if isinstance(value, tuple):  # filename*=charset'lang'percent-encoded
            try:
                encoded = collapse_rfc2231_value(value, errors="strict")
            except (LookupError, UnicodeDecodeError):  # an unknown charset, bad bytes
                continue
        else:
            plain = value
    raw = encoded or plain
    return plain_filename(raw.replace("\\", "/").rsplit("/", 1)[-1])


def names_its_type(name: str) -> bool:
    """Whether a file name ends in a type an install reads (a model, an archive)."""
    return name.lower().endswith(MODEL_SUFFIXES)


def plain_filename(name: str) -> str:
    """``name`` as a plain name in one folder; "" when nothing usable is left.

    ``..``, separators (``%2F``, ``\\``), control characters and a leading dot would make
    the staged download land elsewhere or hide, and so would, on Windows, a drive or stream
    (``D:x``), a device name (``CON``) or a trailing dot. A name too long for the file system
    keeps its end (the type).
    """
    name = re.sub(r'[\x00-\x1f\x7f/\\:*?"<>|]+', "_", name).strip().lstrip(".").rstrip(". ")
    if name.split(".", 1)[0].rstrip(" ").lower() in fsnames.WINDOWS_DEVICES:
        name = f"_{name}"
    while len(name.encode()) > URL_NAME_MAX:
        name = name[1:] if len(name) > 1 else ""
    return name if fsnames.plain_name(name) else ""


def file_stem(name: str) -> str:
    """``name`` without its model or archive type (``.tar.gz`` whole)."""
    lowered = name.lower()
    for suffix in MODEL_SUFFIXES:
        if lowered.endswith(suffix):
            return name[: -len(suffix)]
    return name


def parse_source(
    text: str,
    *,
    revision: str | None,
    subfolder: str | None,
    known: dict[str, KnownModel],
    roots: Sequence[Path] = (),
    provider: str = "",
    variant: str = "",
    precision: str = "",
) -> tuple[dict[str, Any], str]:
    """The source record and the default model id for ``text``; FieldError when unusable.

    A catalog name resolves to its ``variant`` build, else to the build for ``provider`` that
    the asked ``precision`` can be made from (known.resolve_variant).
    A local path must lie inside one of ``roots`` (the install_roots setting; empty allows
    any) and be a regular file or a folder. This stats files and never opens one, but it
    still touches the disk: call it off the event loop.
    """
    text = text.strip()
    if not text:
        raise FieldError("source", "must name a catalog model, a hub repo id, a URL or a path")
    if subfolder and ".." in PurePosixPath(subfolder).parts:
        raise FieldError("subfolder", "must stay inside the repo (no '..')")
    if text in known:
        entry = known[text]
        try:
            build = resolve_variant(entry, provider, variant, precision)
        except NoVariantError as exc:
            raise FieldError("variant" if variant else "source", str(exc)) from None
        source = {
            "kind": "hub",
            "repo": build.repo,
            "revision": revision or build.revision,
            "subfolder": subfolder if subfolder is not None else build.subfolder,
            "catalog": entry.name,
            "variant": build.key,
            "convert": build.convert,
            "family": entry.family,
            "license": entry.license,
            "description": entry.description,
            "sha256": build.sha256,
        }
        return source, entry.name
    if variant:
        raise FieldError("variant", "only a catalog name has variants")
    if text.startswith(("http://", "https://")):
        url = urlparse(text)
        if not url.netloc:
            raise FieldError("source", f"{text!r} is not a valid URL")
        if url.netloc in ("huggingface.co", "hf.co"):
            parts = [p for p in url.path.split("/") if p]
            if len(parts) == 2:  # a repo page: install from the hub, not the HTML
                text = "/".join(parts)
            elif len(parts) > 4 and parts[2] == "blob":
                # A file's page (what the browser shows): its bytes are under resolve/.
                text = url._replace(path="/".join(["", *parts[:2], "resolve", *parts[3:]])).geturl()
        if text.startswith(("http://", "https://")):
            name = url_filename(url.path)
            # A URL without a file name (https://host/) is named after its host.
            stem = file_stem(name) if PurePosixPath(url.path).name else url.netloc
            return {"kind": "url", "url": text, "filename": name}, slugify(stem)
    if text.startswith("hf:"):
        return _hub_source(text, revision, subfolder)
    path = Path(text).expanduser()
    if path.is_absolute() or text.startswith((".", "~")) or fsnames.exists(path):
        resolved = local_path("source", text, roots)
        source = {"kind": "path", "path": str(resolved), "filename": path.name}
        return source, slugify(file_stem(path.name))
    if _REPO_ID.match(text):
        hub: dict[str, Any] = {"kind": "hub", "repo": text, "revision": revision}
        hub["subfolder"] = subfolder or ""
        return hub, slugify(text.split("/")[1])
    names = ", ".join(sorted(known)) or "none"
    raise FieldError(
        "source",
        f"{text!r} is not a catalog name ({names}), a hub repo id (owner/name), "
        "an http(s) URL or an existing path",
    )


def local_path(field: str, text: str, roots: Sequence[Path]) -> Path:
    """The resolved local path ``text`` names, inside ``roots``, a regular file or a folder.

    Messages repeat only what the user typed: nothing says whether a file outside the roots
    exists, or where a link points.
    """
    if "\0" in text:  # no path holds one; the OS refuses to look it up at all
        raise FieldError(field, f"{text!r} is not a path: it holds a NUL character")
    resolved = Path(os.path.realpath(Path(text).expanduser()))
    if roots and not any(resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(root) for root in roots)
        raise FieldError(
            field,
            f"{text!r} is outside the folders local installs may read ({allowed}); move the "
            "model there or add its folder to the install_roots setting",
        )
    if not fsnames.exists(resolved):
        raise FieldError(field, f"{text!r} does not exist on the daemon's machine")
    try:
        check_special(resolved, repr(text))
    except UnsafeContentError as exc:
        raise FieldError(field, str(exc)) from None
    return resolved


def _hub_source(
    text: str, revision: str | None, subfolder: str | None
) -> tuple[dict[str, Any], str]:
    """An ``hf://owner/name@revision/subfolder`` source; the request's own fields win."""
    match = _HUB_SOURCE.match(text)
    if match is None:
        raise FieldError(
            "source",
            f"{text!r} is not a hub source: write hf://owner/name, optionally followed by "
            "@revision and /subfolder",
        )
    inner = match["subfolder"] or ""
    if ".." in PurePosixPath(inner).parts:
        raise FieldError("source", "the subfolder must stay inside the repo (no '..')")
    source = {
        "kind": "hub",
        "repo": match["repo"],
        "revision": revision or match["revision"],
        "subfolder": subfolder if subfolder is not None else inner,
    }
    return source, slugify(match["repo"].split("/")[1])


def describe_source(source: dict[str, Any]) -> str:
    """The one-line form stored with the model: hf://repo@rev/sub, a URL or a path."""
    if source["kind"] == "hub":
        revision = f"@{source['revision']}" if source.get("revision") else ""
        sub = f"/{source['subfolder']}" if source.get("subfolder") else ""
        return f"hf://{source['repo']}{revision}{sub}"
    return str(source.get("url") or source.get("path"))
