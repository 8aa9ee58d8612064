"""A node's model cache: files by sha256, verified before use, linked into roots, LRU-evicted.

No Ray needed: the cache is plain files, fed the chunks the head would stream.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import pytest

from impasto.worker.ray.cache import BlobCache, FetchError
from impasto.worker.ray.manifest import FileIndex
from impasto.worker.ray.messages import FileEntry, Manifest


def _manifest(key: str, files: dict[str, bytes]) -> Manifest:
    entries = [
        FileEntry(path, len(data), hashlib.sha256(data).hexdigest()) for path, data in files.items()
    ]
    return Manifest(key=key, model_dir=f"/head/models/{key}", files=entries)


def _send(cache: BlobCache, data: bytes, chunk: int = 3, sha: str | None = None) -> None:
    digest = sha or hashlib.sha256(data).hexdigest()
    offsets = list(range(0, len(data), chunk)) or [0]
    for offset in offsets:
        part = data[offset : offset + chunk]
        cache.put_chunk(digest, offset, part, offset == offsets[-1], "")


def test_a_file_is_published_only_when_its_digest_matches(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, limit=10**6)
    good = b"unet weights" * 10
    manifest = _manifest("m", {"model/unet.onnx": good})
    assert cache.missing(manifest) == [manifest.files[0].sha256]
    _send(cache, good)
    assert cache.missing(manifest) == []
    root = cache.link(manifest)
    assert (root / "model" / "unet.onnx").read_bytes() == good
    assert os.path.samefile(root / "model" / "unet.onnx", cache.blob(manifest.files[0].sha256))


def test_a_corrupted_transfer_is_rejected_and_reported(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, limit=10**6)
    claimed = hashlib.sha256(b"the real file").hexdigest()
    _send(cache, b"something else", sha=claimed)
    assert not cache.blob(claimed).exists()
    assert not list(cache.blobs.glob(".*.part")), "the bad partial file was left"
    with pytest.raises(FetchError, match="different sha256"):
        cache.wait([claimed], timeout=1)


def test_a_waiting_job_wakes_when_the_last_chunk_lands(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, limit=10**6)
    data = os.urandom(1000)
    sender = threading.Timer(0.2, _send, args=(cache, data, 100))
    sender.start()
    started = time.monotonic()
    cache.wait([hashlib.sha256(data).hexdigest()], timeout=10)
    assert time.monotonic() - started < 5
    sender.join()


def test_a_missing_file_times_out_with_a_reason(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, limit=10**6)
    with pytest.raises(FetchError, match="did not arrive"):
        cache.wait(["0" * 64], timeout=0.2)


def test_the_least_recently_used_model_is_evicted_past_the_limit(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, limit=450)  # room for two of the 200-byte models
    manifests = {name: _manifest(name, {f"{name}/w.bin": name.encode() * 200}) for name in "abc"}

    def use(name: str) -> None:
        manifest = manifests[name]
        if cache.missing(manifest):
            _send(cache, name.encode() * 200, chunk=64)
        cache.link(manifest)
        cache.evict(keep=name)
        time.sleep(0.02)  # distinct use times

    use("a")
    use("b")
    use("a")  # a is now the more recently used
    use("c")
    assert sorted(p.name for p in cache.roots.iterdir()) == ["a", "c"]
    assert cache.size() == 400
    assert cache.missing(manifests["b"]), "b's file stayed after its root was evicted"
    assert not cache.missing(manifests["a"])


def test_the_head_names_only_its_own_models_files(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "mine" / "unet").mkdir(parents=True)
    (models / "mine" / "unet" / "model.onnx").write_bytes(b"weights")
    (models / "mine" / "model_index.json").write_text("{}")
    index = FileIndex()
    _key, folder, files = index.model(models, "mine")
    assert folder == str(models / "mine")
    assert [f.path for f in files] == ["mine/model_index.json", "mine/unet/model.onnx"]
    assert files[1].sha256 == hashlib.sha256(b"weights").hexdigest()
    assert index.paths[files[1].sha256] == models / "mine" / "unet" / "model.onnx"
    assert index.model(models, "sd-tiny")[2] == [], "bundled models are on every node already"
