"""A local stand-in for the Hugging Face Hub and a plain file server, on 127.0.0.1.

It speaks the endpoints ``huggingface_hub`` uses: ``/api/models/{repo}/revision/{rev}`` (the
file listing with LFS sha256s) and ``/{repo}/resolve/{rev}/{path}`` (302 to a blob URL with the
X-Repo-Commit / X-Linked-Etag / X-Linked-Size headers), and blobs served with ETag and Range.
Knobs make it slow (bytes per second), drop a connection mid-file once, or lie about a hash.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Repo:
    """One fake repo at one commit: file path -> bytes."""

    files: dict[str, bytes]
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    revisions: tuple[str, ...] = ("main",)
    wrong_sha: set[str] = field(default_factory=set)  # paths whose listed sha256 is wrong
    declared_size: dict[str, int] = field(default_factory=dict)  # paths with a lying size


def folder_files(folder: Path, prefix: str = "") -> dict[str, bytes]:
    """Every file under ``folder`` keyed by its posix path (under ``prefix``)."""
    return {
        prefix + p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class FakeHub:
    """The server; ``requests`` logs (method, path, Range header) for assertions."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.files: dict[str, bytes] = {}  # plain URLs: /files/NAME
        self.rate: float = 0.0  # bytes per second for blobs and files; 0 = unthrottled
        self.drop_once: dict[str, int] = {}  # blob sha or file name -> drop after N bytes, once
        self.requests: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._handle(self, head=True)

            def do_GET(self) -> None:
                hub._handle(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_repo(self, repo_id: str, repo: Repo) -> None:
        self.repos[repo_id] = repo
        for data in repo.files.values():
            self.blobs[hashlib.sha256(data).hexdigest()] = data

    def ranges_for(self, suffix: str) -> list[str]:
        """The Range headers of GETs whose path ends with ``suffix``."""
        with self._lock:
            return [r for m, p, r in self.requests if m == "GET" and p.endswith(suffix) and r]

    # --- request handling -----------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        path = h.path.split("?", 1)[0]
        with self._lock:
            self.requests.append(("HEAD" if head else "GET", path, h.headers.get("Range", "")))
        api = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$", path)
        resolve = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if api:
            self._model_info(h, api.group(1), api.group(2) or "main")
        elif resolve:
            self._resolve(h, resolve.group(1), resolve.group(2), resolve.group(3), head)
        elif path.startswith("/blobs/") and path[7:] in self.blobs:
            self._serve(h, self.blobs[path[7:]], path[7:], head)
        elif path.startswith("/files/") and path[7:] in self.files:
            self._serve(h, self.files[path[7:]], path[7:], head)
        else:
            self._send(h, 404, b'{"error":"not found"}', {"X-Error-Code": "EntryNotFound"})

    def _send(self, h: Any, status: int, body: bytes, headers: dict[str, str]) -> None:
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _repo(self, h: Any, repo_id: str, revision: str) -> Repo | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            self._send(
                h, 404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound"}
            )
            return None
        if revision not in repo.revisions and revision != repo.commit:
            body = b'{"error":"Invalid rev id"}'
            self._send(h, 404, body, {"X-Error-Code": "RevisionNotFound"})
            return None
        return repo

    def _model_info(self, h: Any, repo_id: str, revision: str) -> None:
        repo = self._repo(h, repo_id, revision)
        if repo is None:
            return
        siblings = []
        for name, data in sorted(repo.files.items()):
            sha = hashlib.sha256(data).hexdigest()
            if name in repo.wrong_sha:
                sha = hashlib.sha256(b"not these bytes").hexdigest()
            size = repo.declared_size.get(name, len(data))
            siblings.append(
                {
                    "rfilename": name,
                    "size": size,
                    "blobId": hashlib.sha1(data).hexdigest(),
                    "lfs": {"sha256": sha, "size": size, "pointerSize": 134},
                }
            )
        body = {"id": repo_id, "modelId": repo_id, "sha": repo.commit, "private": False}
        body["siblings"] = siblings
        self._send(h, 200, json.dumps(body).encode(), {"Content-Type": "application/json"})

    def _resolve(self, h: Any, repo_id: str, revision: str, name: str, head: bool) -> None:
        repo = self._repo(h, repo_id, revision)
        if repo is None:
            return
        data = repo.files.get(name)
        if data is None:
            self._send(h, 404, b"{}", {"X-Error-Code": "EntryNotFound"})
            return
        sha = hashlib.sha256(data).hexdigest()
        headers = {
            "X-Repo-Commit": repo.commit,
            "X-Linked-Etag": f'"{sha}"',
            "X-Linked-Size": str(len(data)),
            "ETag": f'"{sha}"',
            "Location": f"{self.url}/blobs/{sha}",
        }
        self._send(h, 302, b"", headers)

    def _serve(self, h: Any, data: bytes, key: str, head: bool) -> None:
        etag = f'"{hashlib.sha256(data).hexdigest()}"'
        start = 0
        status = 200
        wanted = h.headers.get("Range", "")
        if_range = h.headers.get("If-Range")
        match = re.match(r"bytes=(\d+)-$", wanted)
        if match and (if_range is None or if_range == etag):
            start = int(match.group(1))
            if start >= len(data):
                self._send(h, 416, b"", {"Content-Range": f"bytes */{len(data)}"})
                return
            status = 206
        body = data[start:]
        h.send_response(status)
        h.send_header("ETag", etag)
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("Content-Length", str(len(body)))
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        if head:
            return
        drop_at = self.drop_once.pop(key, None)
        sent = 0
        step = 16 * 1024
        try:
            while sent < len(body):
                if drop_at is not None and start + sent >= drop_at:
                    h.close_connection = True
                    h.wfile.flush()
                    h.connection.shutdown(2)  # the connection drops mid-file
                    return
                chunk = body[sent : sent + step]
                h.wfile.write(chunk)
                sent += len(chunk)
                if self.rate:
                    time.sleep(len(chunk) / self.rate)
        except (BrokenPipeError, ConnectionResetError, OSError):
            return
