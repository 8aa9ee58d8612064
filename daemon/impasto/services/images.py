"""Init images and masks: decoding what clients send and keeping uploads in one folder."""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import os
import re
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from impasto.services.errors import FieldError, NotFoundError

ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP"}
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
UPLOAD_REF = re.compile(r"upload:([0-9a-f]{32})")  # how requests and plans name an upload
MAX_SIDE = 4096  # an input image may have at most MAX_SIDE * MAX_SIDE pixels
MAX_PIXELS = MAX_SIDE * MAX_SIDE
_AT_MOST = f"at most {MAX_SIDE}x{MAX_SIDE} pixels"


INLINE_FORMS = ("base64 image data", "a data: URL", "upload:<id> from POST /images")


class UploadStore:
    """Uploaded images, stored as PNG under an opaque id."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        # A request naming an upload marks it used (its time) while the sweep, under the same
        # lock, checks that time and deletes: an upload a new job names is never swept.
        self._lock = threading.Lock()
        self._local = threading.local()  # the ids this thread's open ``new_uploads`` collects

    @contextlib.contextmanager
    def new_uploads(self) -> Iterator[list[str]]:
        """The ids of the uploads this thread stores inside the block, removed if the block
        raises: a request refused after its inline images were stored leaves none behind
        (a client retrying a bad 20 MB request would fill the disk). Nested blocks share the
        outermost one's list."""
        outer = getattr(self._local, "created", None)
        created: list[str] = [] if outer is None else outer
        self._local.created = created
        try:
            yield created
        except BaseException:
            self.discard(created)
            raise
        finally:
            self._local.created = outer

    def discard(self, upload_ids: Iterable[str]) -> None:
        """Remove these uploads (blocking; those already gone are skipped)."""
        for upload_id in upload_ids:
            if UPLOAD_ID.match(upload_id):
                with self._lock, contextlib.suppress(FileNotFoundError):
                    (self.folder / f"{upload_id}.png").unlink()

    def path_of(self, upload_id: str) -> Path:
        # Ids are generated here as hex; anything else could name a path outside the folder.
        if not UPLOAD_ID.match(upload_id):
            raise NotFoundError(f"no uploaded image {upload_id!r}")
        path = self.folder / f"{upload_id}.png"
        if not path.is_file():
            raise NotFoundError(f"no uploaded image {upload_id!r}; upload it with POST /images")
        return path

    def save_bytes(self, data: bytes, field: str = "file") -> tuple[str, Image.Image]:
        return self.save_image(decode_image(data, field, self.max_bytes))

    def save_image(self, image: Image.Image) -> tuple[str, Image.Image]:
        upload_id = uuid.uuid4().hex
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{upload_id}.tmp"
        image.save(tmp, format="PNG")
        tmp.replace(self.folder / f"{upload_id}.png")
        created = getattr(self._local, "created", None)
        if created is not None:
            created.append(upload_id)
        return upload_id, image

    def sweep(self, older_than: float, in_use: set[str]) -> int:
        """Delete the uploads last written or named by a request before ``older_than`` (a
        time.time()) that no id in ``in_use`` names, and temporary files a crash left; returns
        how many went (blocking)."""
        removed = 0
        for path in self.folder.glob("*"):
            upload_id = path.name.removesuffix(".png")
            stale = path.name.startswith(".") and path.name.endswith(".tmp")
            if not (stale or (UPLOAD_ID.match(upload_id) and upload_id not in in_use)):
                continue
            try:
                with self._lock:
                    if path.stat().st_mtime < older_than:
                        path.unlink()
                        removed += 1
            except FileNotFoundError:
                continue  # removed meanwhile
        return removed

    def image_size(self, upload_id: str) -> tuple[int, int]:
        """(width, height) of an upload, reading only its header."""
        with Image.open(self.path_of(upload_id)) as img:
            return img.size

    def resolve(self, value: str, field: str) -> tuple[str, Image.Image]:
        """An ``upload:<id>``, a data URL or bare base64 -> (upload id, image); inline data is
        stored as a new upload."""
        image = self.read(value, field)
        if value.startswith("upload:"):
            return value.removeprefix("upload:"), image
        return self.save_image(image)

    def read(self, value: str, field: str, also: tuple[str, ...] = ()) -> Image.Image:
        """The image an ``upload:<id>``, a data URL or bare base64 names, stored nowhere new
        (``also``: the other forms the field takes, for its error)."""
        if value.startswith("upload:"):
            try:
                with self._lock:
                    path = self.path_of(value.removeprefix("upload:"))
                    # Used now: the retention period counts from the last request naming it.
                    with contextlib.suppress(OSError):
                        os.utime(path)
            except NotFoundError as exc:
                raise FieldError(field, str(exc)) from None
            with Image.open(path) as img:
                img.load()
                return img
        raw = value.split(",", 1)[1] if value.startswith("data:") else value
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            *forms, last = (*INLINE_FORMS, *also)
            raise FieldError(field, f"must be {', '.join(forms)} or {last}") from None
        return decode_image(data, field, self.max_bytes)


# The modes every reader of a decoded image takes: 8 bits a channel, grey or RGB.
EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA"})


def eight_bit(image: Image.Image) -> Image.Image:
    """``image`` in an 8-bit mode. Pillow opens a 16-bit grey PNG as ``I;16`` (or ``I``),
    whose values it would clip at 255 when converted (a dark 16-bit mask would read white):
    they are scaled to 8 bits. A CMYK or YCbCr JPEG becomes RGB."""
    if image.mode in EIGHT_BIT_MODES:
        return image
    if image.mode.startswith("I"):
        values = np.asarray(image, dtype=np.float64) / 257.0  # 65535 -> 255
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    return image.convert("RGB")


def too_large(size: int, max_bytes: int) -> str:
    """The rule an image of ``size`` bytes breaks, past ``max_bytes``."""
    return f"image is {size} bytes; the limit is {max_bytes} bytes (the max_upload_size setting)"


def decode_image(data: bytes, field: str, max_bytes: int) -> Image.Image:
    """Decode PNG/JPEG/WebP bytes, checking size and type before trusting them; the image
    comes back upright (``upright``) in an 8-bit mode (``eight_bit``)."""
    if len(data) > max_bytes:
        raise FieldError(field, too_large(len(data), max_bytes))
    try:
        image = Image.open(io.BytesIO(data))
        if image.format not in ALLOWED_FORMATS:
            raise FieldError(
                field, f"image type {image.format} is not allowed; use PNG, JPEG or WebP"
            )
        if image.width * image.height > MAX_PIXELS:
            raise FieldError(field, f"image is {image.width}x{image.height}; {_AT_MOST}")
        image.load()
    except Image.DecompressionBombError:
        # Pillow refuses to even open a header this large (over twice its pixel limit).
        raise FieldError(field, f"image is too large to open; {_AT_MOST}") from None
    except (UnidentifiedImageError, OSError):
        raise FieldError(field, "is not a readable PNG, JPEG or WebP image") from None
    return eight_bit(upright(image))


ORIENTATION = 0x0112  # EXIF's orientation tag: 1 is upright


def upright(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation says (a phone's photo stored sideways)."""
    try:
        turned = image.getexif().get(ORIENTATION, 1) != 1
    except (OSError, ValueError, SyntaxError):  # a damaged EXIF block: as stored
        return image
    return ImageOps.exif_transpose(image) if turned else image


def image_gone(job_id: str, index: int, name: str) -> str:
    """Why an output whose file is missing cannot be served, and what to do about it."""
    return (
        f"image {index} of job {job_id} is gone: its file {name} is no longer in the output "
        "folder (deleted or moved outside Impasto); DELETE /api/v1/generate/"
        f"{job_id} removes the job from the history"
    )
