"""A local stand-in for the Hugging Face Hub and a plain file server, on 127.0.0.1.

It speaks the endpoints ``huggingface_hub`` uses: ``/api/models/{repo}/revision/{rev}`` (the
file listing with LFS sha256s) and ``/{repo}/resolve/{rev}/{path}`` (302 to a blob URL with the
X-Repo-Commit / X-Linked-Etag / X-Linked-Size headers), and blobs served with ETag and Range.
Knobs make it slow (bytes per second), drop a connection mid-file once, or lie about a hash;
send blobs from another origin (``cdn_host``, like cas-bridge / cdn-lfs, with a signed query);
serve under a mirror's path prefix; answer private and gated repos as the hub does (401 with
X-Error-Code RepoNotFound / GatedRepo, 403 for a gated repo whose licence the token's user has
not accepted); or answer some requests with an error (a 429 with Retry-After, a 5xx) first.
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
    access: str = "public"  # or "private" (needs FakeHub.token), "gated" (FakeHub.accepted)
    names: dict[str, str] = field(default_factory=dict)  # path -> rfilename the listing shows


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
        # (method, Host header, path, Authorization header) of every request, for token checks
        self.seen: list[tuple[str, str, str, str]] = []
        self.prefix = ""  # a mirror's path prefix such as "/hf"; requests outside it are 404
        self.cdn_host = ""  # e.g. "localhost": resolve redirects blobs to that other origin
        self.token = ""  # the token that reads private repos ("Bearer " + token)
        self.accepted = ""  # the token whose user accepted the gated repos' licences
        # path suffix -> (status, headers) answers sent, one per request, before serving it
        self.failures: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.locations: dict[str, str] = {}  # /files/NAME -> a redirect Location for it
        self.dispositions: dict[str, str] = {}  # /files/NAME -> its Content-Disposition
        self.lengths: dict[str, int] = {}  # blob sha or file name -> a length it claims
        self.no_ranges: set[str] = set()  # blob shas or file names served without Range
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
        method = "HEAD" if head else "GET"
        with self._lock:
            self.requests.append((method, path, h.headers.get("Range", "")))
            auth = h.headers.get("Authorization", "")
            self.seen.append((method, h.headers.get("Host", ""), path, auth))
            failures = next((v for k, v in self.failures.items() if path.endswith(k) and v), [])
            failure = failures.pop(0) if failures else None
        if failure is not None:
            self._send(h, failure[0], b'{"error":"try again"}', failure[1])
            return
        if self.prefix and not path.startswith(("/blobs/", "/files/")):
            if not path.startswith(self.prefix + "/"):
                self._send(h, 404, b"{}", {})
                return
            path = path[len(self.prefix) :]
        api = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$", path)
        resolve = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if api:
            self._model_info(h, api.group(1), api.group(2) or "main")
        elif resolve:
            self._resolve(h, resolve.group(1), resolve.group(2), resolve.group(3), head)
        elif path.startswith("/blobs/") and path[7:] in self.blobs:
            self._serve(h, self.blobs[path[7:]], path[7:], head)
        elif path.startswith("/files/") and path[7:] in self.locations:
            self._send(h, 302, b"", {"Location": self.locations[path[7:]]})
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

    def _repo(self, h: Any, repo_id: str, revision: str, files: bool = False) -> Repo | None:
        repo = self.repos.get(repo_id)
        auth = h.headers.get("Authorization", "")
        if repo is not None and repo.access == "private" and auth != f"Bearer {self.token}":
            repo = None  # the hub does not say that a private repo exists
        if (
            repo is not None
            and repo.access == "gated"
            and files
            and (not auth or auth != f"Bearer {self.accepted}")
        ):
            status = 403 if auth else 401
            message = (
                f"Access to model {repo_id} is restricted and you are not in the authorized list."
                if auth
                else f"Access to model {repo_id} is restricted. You must have access to it and "
                "be authenticated to access it. Please log in."
            )
            headers = {"X-Error-Code": "GatedRepo", "X-Error-Message": message}
            self._send(h, status, b'{"error":"gated"}', headers)
            return None
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
            name = repo.names.get(name, name)
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
        repo = self._repo(h, repo_id, revision, files=True)
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
        if self.cdn_host:  # another origin, with a signed URL as cas-bridge sends
            port = self.server.server_address[1]
            signed = f"?X-Amz-Signature={sha[:16]}&X-Amz-Expires=3600"
            headers["Location"] = f"http://{self.cdn_host}:{port}/blobs/{sha}{signed}"
        self._send(h, 302, b"", headers)

    def _serve(self, h: Any, data: bytes, key: str, head: bool) -> None:
        etag = f'"{hashlib.sha256(data).hexdigest()}"'
        start = 0
        status = 200
        wanted = h.headers.get("Range", "")
        if_range = h.headers.get("If-Range")
        match = re.match(r"bytes=(\d+)-$", wanted)
        if key in self.no_ranges:
            match = None
        if match and (if_range is None or if_range == etag):
            start = int(match.group(1))
            if start >= len(data):
                self._send(h, 416, b"", {"Content-Range": f"bytes */{len(data)}"})
                return
            status = 206
        body = data[start:]
        claimed = self.lengths.get(key, len(data)) - start  # a server may lie about it
        h.send_response(status)
        h.send_header("ETag", etag)
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("Content-Length", str(claimed))
        if key in self.dispositions:
            h.send_header("Content-Disposition", self.dispositions[key])
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        if head:
            return
        drop_at = self.drop_once.pop(key, None)
        if claimed > len(body):  # the body ends short of its Content-Length: hang up after it
            drop_at = len(data)
        sent = 0
        step = 16 * 1024
        try:
            while sent < min(len(body), claimed) or drop_at == len(data):
                if drop_at is not None and start + sent >= drop_at:
                    h.close_connection = True
                    h.wfile.flush()
                    h.connection.shutdown(2)  # the connection drops mid-file
                    return
                end = min(sent + step, claimed)
                if drop_at is not None:  # the drop comes exactly at drop_at
                    end = min(end, drop_at - start)
                chunk = body[sent:end]
                h.wfile.write(chunk)
                sent += len(chunk)
                if self.rate:
                    time.sleep(len(chunk) / self.rate)
        except (BrokenPipeError, ConnectionResetError, OSError):
            return
