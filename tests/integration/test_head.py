"""HEAD on every GET route (RFC 9110 9.1): the GET's status and headers, no body, the same
checks; Allow lists HEAD wherever it lists GET; a HEAD on the event stream frees its slot."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.harness import TINY, Daemon, wait_status

TOKEN = "head-test-token"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = Daemon(tmp_path_factory.mktemp("head"), token=TOKEN, max_event_streams=2).start()
    yield running
    running.stop()


def client(daemon: Daemon, token: str | None = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=daemon.url, headers=headers, timeout=30)


def test_head_answers_as_get_without_the_body(daemon: Daemon) -> None:
    with client(daemon) as c:
        job = c.post("/api/v1/generate", json={"prompt": "head", **TINY}).json()
        url = wait_status(c, job["id"], {"completed"})["results"][0]["url"]
        for path in (url, "/api/v1/health", "/api/v1/models", "/sdapi/v1/options", "/"):
            get, head = c.get(path), c.head(path)
            assert (head.status_code, get.status_code) == (200, 200), path
            assert head.content == b"" and get.content, path
            for name in ("content-type", "content-length", "etag"):
                assert head.headers.get(name) == get.headers.get(name), (path, name)


def test_head_goes_through_the_same_checks(daemon: Daemon) -> None:
    with client(daemon, token=None) as anonymous:
        assert anonymous.head("/api/v1/models").status_code == 401
        assert anonymous.head("/api/v1/health").status_code == 200  # public, as its GET
        assert anonymous.head("/api/v1/health", headers={"Host": "evil.example"}).status_code == 403


def test_allow_lists_head_with_get_only(daemon: Daemon) -> None:
    with client(daemon) as c:
        job_path = f"/api/v1/generate/{c.get('/api/v1/history').json()['items'][0]['id']}"
        allowed = c.options(job_path).headers["allow"].replace(" ", "").split(",")
        post_only = c.head("/api/v1/generate")
    assert {"GET", "HEAD"} <= set(allowed)
    assert post_only.status_code == 405 and "HEAD" not in post_only.headers["allow"]


def test_head_on_the_event_stream_ends_and_frees_its_slot(daemon: Daemon) -> None:
    with client(daemon) as c:
        for _ in range(5):  # more than max_event_streams (2)
            head = c.head("/api/v1/events")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-type"].startswith("text/event-stream")
        with c.stream("GET", "/api/v1/events") as stream:
            assert stream.status_code == 200  # not 503: the HEADs hold no slot
