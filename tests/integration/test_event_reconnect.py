"""An EventSource reconnects to the URL it was opened with and sends the last id it got: a
stream opened with ``?since=0`` (as docs/api.md shows) resumes after that id on a reconnect,
rather than sending the whole history again."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.harness import TINY, Daemon, wait_status


def _events(
    client: httpx.Client, path: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The events of a job's stream up to its ``completed`` one."""
    events: list[dict[str, Any]] = []
    with client.stream("GET", path, headers=headers or {}, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
                if events[-1]["type"] == "completed":
                    break
    return events


def test_a_reconnect_resumes_after_last_event_id_even_with_since_in_the_url(
    impasto_daemon: Daemon,
) -> None:
    with impasto_daemon.client() as client:
        job = client.post("/api/v1/generate", json={"prompt": "resume", **TINY}).json()
        wait_status(client, job["id"], {"completed"})
        path = f"/api/v1/events?job={job['id']}&since=0"
        first = _events(client, path)
        seqs = [e["seq"] for e in first]
        assert len(seqs) >= 3 and first[-1]["type"] == "completed"

        # The browser's reconnect: same URL, the last id it got in Last-Event-ID.
        again = _events(client, path, {"Last-Event-ID": str(seqs[-2])})
        assert [e["seq"] for e in again] == seqs[-1:]

        # A later since in the URL than the header: the later one still wins.
        later = f"/api/v1/events?job={job['id']}&since={seqs[-2]}"
        assert [e["seq"] for e in _events(client, later, {"Last-Event-ID": "0"})] == seqs[-1:]


def test_an_empty_job_filter_is_refused_naming_the_field(impasto_daemon: Daemon) -> None:
    """``?job=`` (a URL filled from an empty variable) names no job: not a silent stream, not
    "no job " with a blank id."""
    expected = "job: is empty: give a job's id, or leave job out to follow every job"
    with impasto_daemon.client() as client:
        response = client.get("/api/v1/events?job=")
    assert response.status_code == 422
    assert response.json()["detail"] == expected
    assert response.json()["errors"] == [{"field": "job", "message": expected[len("job: ") :]}]
    url = impasto_daemon.url.replace("http", "ws") + "/api/v1/ws?job="
    with connect(url) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=30)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, expected)
