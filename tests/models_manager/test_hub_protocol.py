"""The install path against a hub that behaves like huggingface.co: a CDN on another origin,
a mirror under a path prefix, private and gated repos, 429/5xx answers, lying servers."""

from __future__ import annotations

import errno
import hashlib
import io
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from impasto.services import downloads
from impasto.services.archives import MAX_MEMBERS, extract_archive
from impasto.services.downloads import DownloadError, RemoteFile, fetch, redirect_guard
from impasto.services.hub import HubError, list_hub_files, range_reader
from impasto.services.safety import UnsafeContentError
from impasto.services.sources import parse_source, url_filename
from impasto.services.stage_fetch import stage_source
from impasto.services.stage_job import StageJob
from tests.harness import Daemon
from tests.models_manager.conftest import TINY, tar_gz, wait_install
from tests.models_manager.fakehub import FakeHub, Repo, folder_files

TOKEN = "hf_k3ep7h1sS3cretTok3n"
LORA = (TINY / "adapters" / "loras" / "tiny-kohya.safetensors").read_bytes()


@pytest.fixture(scope="module")
def cdn_hub() -> Iterator[FakeHub]:
    """A hub under the mirror prefix /hf whose blobs come from another origin (localhost)."""
    server = FakeHub()
    server.prefix, server.cdn_host = "/hf", "localhost"
    server.token = server.accepted = TOKEN
    files = folder_files(TINY / "sd-tiny")
    server.add_repo("o/gated", Repo(files, access="gated"))
    server.add_repo("o/private", Repo(files, access="private"))
    server.add_repo("o/lora", Repo({"lora.safetensors": LORA}, access="gated"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def token_daemon(cdn_hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("hubproto")
    endpoint = f"{cdn_hub.url}/hf/"
    running = Daemon(root, hf_endpoint=endpoint, hf_token=TOKEN, workers=0).start()
    yield running
    running.stop()


def _install(daemon: Daemon, body: dict[str, object], timeout: float = 90) -> dict:
    with daemon.client() as c:
        started = c.post("/api/v1/models/install", json=body)
        assert started.status_code == 202, started.text
        return wait_install(c, started.json()["id"], {"completed", "failed", "cancelled"}, timeout)


def _no_token_off_the_hub(hub: FakeHub) -> None:
    sent = [(m, host, path) for m, host, path, auth in hub.seen if auth]
    assert sent, "the token never reached the hub"
    assert all(host.startswith("127.0.0.1:") for _, host, _ in sent), sent
    assert all(not auth for _, host, _, auth in hub.seen if host.startswith("localhost:"))
    assert any(host.startswith("localhost:") for _, host, _, _ in hub.seen)  # the CDN was used


def test_the_token_reaches_the_hub_behind_a_prefix_and_never_the_cdn(
    token_daemon: Daemon, cdn_hub: FakeHub
) -> None:
    done = _install(token_daemon, {"source": "o/gated", "id": "gated-ok"})
    assert done["status"] == "completed", done
    _no_token_off_the_hub(cdn_hub)
    assert all(p.startswith(("/hf/", "/blobs/")) for _, _, p, _ in cdn_hub.seen)
    # A file URL on the hub itself gets the token too (a gated single file), the CDN does not.
    cdn_hub.seen.clear()
    url = f"{cdn_hub.url}/hf/o/lora/resolve/main/lora.safetensors"
    done = _install(token_daemon, {"source": url, "id": "gated-lora"})
    assert done["status"] == "completed", done
    _no_token_off_the_hub(cdn_hub)
    with token_daemon.client() as c:
        shown = c.get("/api/v1/models/installs").text + c.get("/api/v1/models").text
        shown += c.get("/api/v1/config").text
    logs = token_daemon.output() + "".join(
        p.read_text(errors="replace") for p in token_daemon.log_dir.rglob("*") if p.is_file()
    )
    assert TOKEN not in shown and TOKEN not in logs


def test_gated_and_private_repos_say_what_to_do(token_daemon: Daemon, cdn_hub: FakeHub) -> None:
    cdn_hub.accepted, cdn_hub.token = "hf_someone_else", "hf_someone_else"
    try:
        gated = _install(token_daemon, {"source": "o/gated", "id": "gated-no"})
        private = _install(token_daemon, {"source": "o/private", "id": "private-no"})
    finally:
        cdn_hub.accepted = cdn_hub.token = TOKEN
    assert gated["status"] == private["status"] == "failed"
    assert "o/gated is a gated repo" in gated["error"], gated
    assert f"accept its licence at {cdn_hub.url}/hf/o/gated" in gated["error"]
    assert "o/private was not found" in private["error"], private
    assert "hf_token" in private["error"]
    # Without a token the advice is to set one.
    for repo, words in (("o/gated", "then set hf_token"), ("o/private", "a private repo needs")):
        with pytest.raises(HubError, match=words):
            list_hub_files(repo, None, "", endpoint=f"{cdn_hub.url}/hf", token=None)


def test_429_and_503_are_retried_and_a_long_retry_after_fails_soon(
    token_daemon: Daemon, cdn_hub: FakeHub
) -> None:
    cdn_hub.failures["/api/models/o/gated"] = [(429, {"Retry-After": "1"})]
    cdn_hub.failures["/model_index.json"] = [(503, {}), (502, {})]
    cdn_hub.failures["unet/model.onnx"] = [(429, {"Retry-After": "1"}), (500, {})]
    started = time.monotonic()
    done = _install(token_daemon, {"source": "o/gated", "id": "retried"})
    assert done["status"] == "completed", done
    assert time.monotonic() - started >= 2  # both Retry-After seconds were waited
    assert not any(cdn_hub.failures.values())  # every error answer was met, then retried
    cdn_hub.failures["unet/model.onnx"] = [(429, {"Retry-After": "3600"})]
    started = time.monotonic()
    done = _install(token_daemon, {"source": "o/gated", "id": "told-to-wait"})
    assert done["status"] == "failed"
    assert "wait 3600 s" in done["error"] and "unet/model.onnx" in done["error"], done
    assert time.monotonic() - started < 30
    assert not (token_daemon.data_dir / "models" / "told-to-wait").exists()


def test_a_listing_naming_a_file_outside_the_repo_is_refused(
    token_daemon: Daemon, cdn_hub: FakeHub, tmp_path: Path
) -> None:
    files = folder_files(TINY / "sd-tiny")
    files["unet/escape.json"] = b"{}"
    names = {"unet/escape.json": "unet/../../../../escape.json"}
    cdn_hub.add_repo("o/sneaky", Repo(files, names=names))
    done = _install(token_daemon, {"source": "o/sneaky", "id": "sneaky"})
    assert done["status"] == "failed"
    assert "'unet/../../../../escape.json'" in done["error"] and "refused" in done["error"]
    assert not list(token_daemon.root.rglob("escape.json"))


def test_url_redirects_off_http_and_lying_lengths_fail_clearly(
    token_daemon: Daemon, cdn_hub: FakeHub
) -> None:
    cdn_hub.files["lora.safetensors"] = LORA
    cdn_hub.locations["to-file.safetensors"] = "file:///etc/passwd"
    done = _install(token_daemon, {"source": f"{cdn_hub.url}/files/to-file.safetensors"})
    assert done["status"] == "failed" and "redirected to a file: URL" in done["error"], done
    cdn_hub.files["liar.safetensors"] = LORA
    cdn_hub.lengths["liar.safetensors"] = len(LORA) + 5000
    started = time.monotonic()
    done = _install(token_daemon, {"source": f"{cdn_hub.url}/files/liar.safetensors"})
    assert done["status"] == "failed", done
    assert f"got {len(LORA)} bytes, expected {len(LORA) + 5000}" in done["error"]
    assert time.monotonic() - started < 10


# --- the download steps on their own -------------------------------------------------------


@pytest.fixture
def plain_hub() -> Iterator[FakeHub]:
    server = FakeHub()
    server.files["lora.safetensors"] = LORA
    yield server
    server.close()


def _fetch(hub: FakeHub, dest: Path, size: int | None = None) -> str:
    remote = RemoteFile(f"{hub.url}/files/lora.safetensors", "lora.safetensors", size)
    return fetch(remote, dest, max_size=10**9, progress=lambda n: None, cancel=threading.Event())


def test_a_stale_partial_file_is_dropped_not_kept_forever(
    plain_hub: FakeHub, tmp_path: Path
) -> None:
    dest = tmp_path / "lora.safetensors"
    part = tmp_path / "lora.safetensors.part"
    part.write_bytes(b"x" * (len(LORA) + 100))  # longer than the file: the server says 416
    assert _fetch(plain_hub, dest) == hashlib.sha256(LORA).hexdigest()
    assert dest.read_bytes() == LORA and not part.exists()
    # A partial of another version (its ETag changed) is fetched again whole.
    dest.unlink()
    part.write_bytes(b"old version")
    (tmp_path / "lora.safetensors.part.etag").write_text('"old-etag"')
    assert _fetch(plain_hub, dest) == hashlib.sha256(LORA).hexdigest()
    assert plain_hub.ranges_for("/files/lora.safetensors")[-1] == "bytes=11-"


def test_a_server_that_never_gets_further_fails_instead_of_looping(
    plain_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(downloads, "RETRIES", 3)
    plain_hub.no_ranges.add("lora.safetensors")
    plain_hub.lengths["lora.safetensors"] = len(LORA) + 5000  # it hangs up at the real end
    with pytest.raises(DownloadError, match=r"lora\.safetensors"):
        _fetch(plain_hub, tmp_path / "lora.safetensors")
    gets = [r for r in plain_hub.requests if r[0] == "GET"]
    assert len(gets) == 4  # the first try and three that got no further


def test_range_reads_keep_the_token_off_the_cdn(cdn_hub: FakeHub) -> None:
    listing = list_hub_files("o/gated", None, "", endpoint=f"{cdn_hub.url}/hf", token=TOKEN)
    cdn_hub.seen.clear()
    unet = next(f for f in listing.files if f.path == "unet/model.onnx")
    assert range_reader(unet)(0, 16) == folder_files(TINY / "sd-tiny")["unet/model.onnx"][:16]
    _no_token_off_the_hub(cdn_hub)


def test_redirects_from_a_remote_host_to_this_machine_are_refused() -> None:
    guard = redirect_guard("https://example.com/model.safetensors", "model.safetensors")
    guard(httpx.Request("GET", "https://cdn.example.net/blob"))  # another remote host: fine
    for local in (
        "http://127.0.0.1:8080/x",
        "http://localhost/x",
        "http://10.0.0.5/x",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://2130706433/x",  # 127.0.0.1 as one number, which resolvers accept
        "http://127.1/x",
        "http://169.254.169.254/latest/meta-data",
    ):
        with pytest.raises(DownloadError, match="refused"):
            guard(httpx.Request("GET", local))
    # A local server may redirect on this machine (a mirror on the LAN, the tests' fake hub).
    redirect_guard("http://127.0.0.1:9/x", "x")(httpx.Request("GET", "http://localhost:9/y"))


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/files/..", "download"),
        ("/a%2F..%2Fb.safetensors", "a_.._b.safetensors"),
        ("/x/my%20model.safetensors", "my model.safetensors"),
        ("/x/.hidden.safetensors", "hidden.safetensors"),
        ("/x/a%00b.ckpt", "a_b.ckpt"),
    ],
)
def test_a_url_names_a_plain_file(path: str, name: str) -> None:
    assert url_filename(path) == name


def test_a_full_disk_fails_the_download_saying_what_to_do(
    plain_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = Path.open

    class Full:
        def __init__(self, fh: object) -> None:
            self.fh = fh

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *args: object) -> None:
            self.fh.close()  # type: ignore[attr-defined]

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    def full_open(self: Path, mode: str = "r", *args: object, **kwargs: object) -> object:
        fh = real_open(self, mode, *args, **kwargs)  # type: ignore[call-overload]
        return Full(fh) if self.suffix == ".part" and "b" in mode and "r" not in mode else fh

    monkeypatch.setattr(Path, "open", full_open)
    with pytest.raises(DownloadError, match=r"disk filled up.*temp_dir"):
        _fetch(plain_hub, tmp_path / "lora.safetensors")


def test_an_archive_of_too_many_members_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(MAX_MEMBERS + 1):
            zf.writestr(f"model/t{i}.txt", b"")
    with pytest.raises(UnsafeContentError, match=f"more than {MAX_MEMBERS} members"):
        extract_archive(archive, tmp_path / "out", 10**6, 10**7)
    assert not (tmp_path / "out" / "model").exists()
    many = tmp_path / "many.tar"
    with tarfile.open(many, "w") as tf:
        for i in range(MAX_MEMBERS + 1):
            tf.addfile(tarfile.TarInfo(f"model/t{i}.txt"), io.BytesIO(b""))
    with pytest.raises(UnsafeContentError, match="members"):
        extract_archive(many, tmp_path / "out2", 10**6, 10**7)


def test_a_secret_in_a_url_stays_out_of_the_error_and_the_log(
    token_daemon: Daemon, cdn_hub: FakeHub
) -> None:
    cdn_hub.files["members.safetensors"] = LORA
    cdn_hub.failures["/files/members.safetensors"] = [(401, {})] * 2  # HEAD, GET
    url = f"{cdn_hub.url}/files/members.safetensors?token=s3cr3t-query-token"
    done = _install(token_daemon, {"source": url, "id": "members-only"})
    assert done["status"] == "failed", done
    assert "HTTP 401" in done["error"] and "install it from its path" in done["error"], done
    assert "s3cr3t" not in done["error"]
    assert "s3cr3t" not in token_daemon.output() + "".join(
        p.read_text(errors="replace") for p in token_daemon.log_dir.rglob("*") if p.is_file()
    )


def test_a_resumed_install_drops_files_of_the_commit_before(
    cdn_hub: FakeHub, tmp_path: Path
) -> None:
    files = folder_files(TINY / "sd-tiny")
    cdn_hub.add_repo("o/moving", Repo(files, commit="b" * 40))
    staging = tmp_path / "install"
    # What a daemon stopped mid-install left, fetched when main was at commit aaaa...
    (staging / "files").mkdir(parents=True)
    (staging / "files" / "model_index.json").write_text('{"from": "the old commit"}')
    (staging / "commit").write_text("a" * 40)
    job = StageJob(
        install_id="install",
        model_id="moving",
        source={"kind": "hub", "repo": "o/moving", "revision": None, "subfolder": ""},
        options={"force": True},
        staging=staging,
        models_dir=tmp_path / "models",
        max_file_size=10**9,
        hub_endpoint=f"{cdn_hub.url}/hf",
        hub_token=TOKEN,
    )
    ready = stage_source(job)
    assert (ready / "model_index.json").read_bytes() == files["model_index.json"]
    assert (staging / "commit").read_text() == "b" * 40


def test_a_cut_short_or_damaged_archive_says_so(tmp_path: Path) -> None:
    whole = tar_gz(TINY / "sd-tiny", "model")
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(UnsafeContentError, match=r"cut\.tar\.gz is damaged or cut short"):
        extract_archive(cut, tmp_path / "out", 10**9, 10**10)
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(damaged, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model/model_index.json", b"{}" * 1000)
    raw = bytearray(damaged.read_bytes())
    start = raw.index(b"model/model_index.json") + len("model/model_index.json")
    raw[start : start + 8] = bytes(8)  # the compressed data, not the index
    damaged.write_bytes(bytes(raw))
    with pytest.raises(UnsafeContentError, match=r"damaged\.zip is damaged or cut short"):
        extract_archive(damaged, tmp_path / "out2", 10**9, 10**10)


def test_a_hub_file_page_url_installs_the_file_not_the_page() -> None:
    page = "https://huggingface.co/owner/name/blob/main/loras/x.safetensors"
    source, model_id = parse_source(page, revision=None, subfolder=None, known={})
    assert source["url"] == "https://huggingface.co/owner/name/resolve/main/loras/x.safetensors"
    assert (source["filename"], model_id) == ("x.safetensors", "x")


def test_a_token_the_hub_refuses_is_named_as_the_problem(cdn_hub: FakeHub) -> None:
    invalid = {"X-Error-Message": "Invalid credentials in Authorization header"}
    cdn_hub.failures["/api/models/o/gated"] = [(401, invalid)]
    with pytest.raises(HubError, match=r"refused the token in hf_token / HF_TOKEN \(HTTP 401\)"):
        list_hub_files("o/gated", None, "", endpoint=f"{cdn_hub.url}/hf", token="hf_revoked")


@pytest.mark.parametrize("on_hub", [True, False])
def test_only_a_hub_file_that_cannot_be_reached_suggests_a_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_hub: bool
) -> None:
    # A plain URL's server has no mirror: hf_endpoint was suggested for any URL.
    monkeypatch.setattr(downloads, "RETRIES", 1)
    remote = RemoteFile("http://127.0.0.1:1/x.safetensors", "x.safetensors", on_hub=on_hub)
    with pytest.raises(DownloadError) as raised:
        fetch(
            remote,
            tmp_path / "x.safetensors",
            max_size=10**9,
            progress=lambda n: None,
            cancel=threading.Event(),
        )
    message = str(raised.value)
    assert "x.safetensors: cannot reach 127.0.0.1" in message, message
    assert ("HF_ENDPOINT" in message) is on_hub, message
