"""A GCS emulator on 127.0.0.1 for the gs:// tests, and the environment that points every
client at it (gcsfs through etils.epath, google-cloud-storage, TensorStore inside orbax).

`gcp-storage-emulator` serves the JSON API in a thread of the test process. It ignores the
generation preconditions (`ifGenerationMatch`) that make claims safe on a real bucket, so
`honour_preconditions` wraps its object insert, resumable-upload and delete handlers: they
answer 412 when the object's current generation (0: absent) differs, as GCS does. The
handlers run one at a time (the emulator's HTTPServer is single-threaded; the lock keeps it
so should that change), so check-then-write is atomic, as on GCS.

Its media downloads also lack the `x-goog-generation` header GCS sends. TensorStore (orbax's
OCDBT checkpoints) conditions its manifest writes on the generation it read, and fails with
"Malformed StorageGeneration" without it; the wrapped download adds the header and answers
the read preconditions (ifGenerationMatch: 412, ifGenerationNotMatch: 304) as GCS does.

Environment (also inherited by the CLI subprocesses the tests start):
- STORAGE_EMULATOR_HOST: gcsfs and google-cloud-storage send requests there (the latter
  with anonymous credentials and no project when it is set).
- GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false: read when gcsfs is imported; left at its default
  (true), gcsfs swaps in ExtendedGcsFileSystem, which first asks the bucket's layout over
  gRPC, a call the emulator never answers (it times out after 60 s and falls back: one
  pipe + cat took 144 s here, against 0.18 s with false). false keeps the plain JSON-API
  GCSFileSystem, which is all a standard (non-zonal, non-HNS) bucket needs.
- FSSPEC_GCS_TOKEN=anon: gcsfs skips the credential search (fsspec reads FSSPEC_<PROTO>_<KEY>).
- TENSORSTORE_GCS_HTTP_URL: TensorStore's GCS driver endpoint (orbax writes checkpoints
  through it); GOOGLE_AUTH_TOKEN_FOR_TESTING: a fixed bearer token, so TensorStore looks for
  no credentials (the emulator checks none).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from http import HTTPStatus

BUCKET = "lab-bucket"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def emulator_env(url: str) -> dict[str, str]:
    return {
        "STORAGE_EMULATOR_HOST": url,
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        "FSSPEC_GCS_TOKEN": "anon",
        "TENSORSTORE_GCS_HTTP_URL": url,
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",
        "GOOGLE_CLOUD_PROJECT": "test-project",
    }


def _current_generation(storage, bucket: str, name: str) -> int:
    from gcp_storage_emulator.exceptions import NotFound

    try:
        return int(storage.get_file_obj(bucket, name)["generation"])
    except NotFound:
        return 0


def _precondition_failed(response, name: str, wanted: str, current: int) -> None:
    response.status = HTTPStatus.PRECONDITION_FAILED
    message = f"precondition failed for {name}: ifGenerationMatch={wanted}, current {current}"
    response.json({"error": {"code": 412, "message": message, "errors": [{"message": message}]}})


def _object_name(request, storage) -> str | None:
    """The object a write or delete targets (insert: ?name= or the metadata; resumable
    chunk: the upload's object; delete: the URL)."""
    if "object_id" in request.params:
        import urllib.parse

        return urllib.parse.unquote(request.params["object_id"])
    if "name" in request.query:
        return request.query["name"][0]
    if "upload_id" in request.query:
        return storage.get_resumable_file_obj(request.query["upload_id"][0])["name"]
    data = request.data
    if isinstance(data, dict):
        meta = data.get("meta", data)
        return meta.get("name") if isinstance(meta, dict) else None
    return None


def _guarded(handler: Callable, lock: threading.RLock) -> Callable:
    def guarded(request, response, storage, *args, **kwargs):
        with lock:
            wanted = request.query.get("ifGenerationMatch", [None])[0]
            if wanted is not None:
                bucket = request.params["bucket_name"]
                name = _object_name(request, storage)
                current = _current_generation(storage, bucket, name) if name else 0
                if int(wanted) != current:
                    return _precondition_failed(response, name, wanted, current)
            return handler(request, response, storage, *args, **kwargs)

    guarded.__wrapped__ = handler
    return guarded


def _versioned_read(handler: Callable, lock: threading.RLock) -> Callable:
    def versioned(request, response, storage, *args, **kwargs):
        with lock:
            bucket = request.params["bucket_name"]
            name = _object_name(request, storage)
            current = _current_generation(storage, bucket, name)
            match = request.query.get("ifGenerationMatch", [None])[0]
            if match is not None and current and int(match) != current:
                return _precondition_failed(response, name, match, current)
            not_match = request.query.get("ifGenerationNotMatch", [None])[0]
            if not_match is not None and current and int(not_match) == current:
                response.status = HTTPStatus.NOT_MODIFIED
            else:
                handler(request, response, storage, *args, **kwargs)
            if current and response.status in (HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT,
                                                HTTPStatus.NOT_MODIFIED):  # fmt: skip
                obj = storage.get_file_obj(bucket, name)
                response["x-goog-generation"] = obj["generation"]
                response["x-goog-metageneration"] = obj["metageneration"]

    versioned.__wrapped__ = handler
    return versioned


@contextlib.contextmanager
def honour_preconditions() -> Iterator[None]:
    """Make the emulator's insert, resumable-upload and delete handlers honour
    `ifGenerationMatch`, and its downloads carry and honour generations (restored
    afterwards)."""
    from gcp_storage_emulator import server
    from gcp_storage_emulator.handlers import objects

    lock = threading.RLock()  # insert hands a resumable chunk on to upload_partial
    originals = {
        name: getattr(objects, name) for name in ("insert", "upload_partial", "delete", "download")
    }
    wrapped = {
        fn: (_versioned_read if name == "download" else _guarded)(fn, lock)
        for name, fn in originals.items()
    }
    swapped: list[tuple[dict, str, Callable]] = []
    for _, handlers in server.HANDLERS:
        for method, fn in list(handlers.items()):
            if fn in wrapped:
                handlers[method] = wrapped[fn]
                swapped.append((handlers, method, fn))
    for name, fn in originals.items():
        setattr(objects, name, wrapped[fn])
    try:
        yield
    finally:
        for handlers, method, fn in swapped:
            handlers[method] = fn
        for name, fn in originals.items():
            setattr(objects, name, fn)


@contextlib.contextmanager
def running_emulator(bucket: str = BUCKET) -> Iterator[str]:
    """Start the emulator (in memory, `bucket` created) on a free loopback port; its URL."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    logging.getLogger("gcp_storage_emulator").setLevel(logging.CRITICAL)  # 404s are answers
    with honour_preconditions():
        server = create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket)
        server.start()
        # A client that hangs up early (a killed run) is not a test failure: no traceback.
        server._api._httpd.handle_error = lambda request, address: None
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()


@contextlib.contextmanager
def emulator_environment(url: str) -> Iterator[dict[str, str]]:
    """Point this process (and its children) at the emulator; undo afterwards."""
    env = emulator_env(url)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    _reset_clients()
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _reset_clients()


def _reset_clients() -> None:
    """Forget cached clients built for another endpoint (epath caches its gcsfs instance,
    fsspec caches instances by arguments, lab caches its storage client)."""
    import fsspec

    fsspec.config.conf.setdefault("gcs", {})["token"] = "anon"
    with contextlib.suppress(Exception):
        from etils.epath import backend

        backend.fsspec_backend._get_filesystem.cache_clear()
    with contextlib.suppress(Exception):
        import gcsfs

        gcsfs.GCSFileSystem.clear_instance_cache()
    with contextlib.suppress(Exception):
        from lab.runtime import remote_io

        remote_io.reset_clients()


def list_objects(url: str, bucket: str, prefix: str = "") -> list[str]:
    """Object names under `prefix`, straight from the emulator's JSON API (no client cache)."""
    import urllib.parse
    import urllib.request

    names: list[str] = []
    token = None
    while True:
        query = {"prefix": prefix}
        if token:
            query["pageToken"] = token
        address = f"{url}/storage/v1/b/{bucket}/o?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(address) as reply:
            page = json.loads(reply.read())
        names += [item["name"] for item in page.get("items", [])]
        token = page.get("nextPageToken")
        if not token:
            return sorted(names)


class Bucket:
    """A test's own prefix in the emulator's bucket: `url(...)` names gs:// paths under it,
    `objects(...)` lists what is stored there (asked of the emulator, not of a client)."""

    def __init__(self, emulator: str, prefix: str) -> None:
        self.emulator, self.prefix = emulator, prefix

    @classmethod
    def for_test(cls, emulator: str, test_name: str) -> Bucket:
        import re
        import uuid

        slug = re.sub(r"[^A-Za-z0-9_-]+", "-", test_name)[:60]
        return cls(emulator, f"{slug}-{uuid.uuid4().hex[:8]}")

    def url(self, *parts: str) -> str:
        return "/".join([f"gs://{BUCKET}", self.prefix, *parts])

    def objects(self, *parts: str) -> list[str]:
        prefix = "/".join([self.prefix, *parts]) + "/"
        return [name[len(prefix) :] for name in list_objects(self.emulator, BUCKET, prefix)]

    def read(self, *parts: str) -> bytes:
        import urllib.parse
        import urllib.request

        name = urllib.parse.quote("/".join([self.prefix, *parts]), safe="")
        address = f"{self.emulator}/download/storage/v1/b/{BUCKET}/o/{name}?alt=media"
        with urllib.request.urlopen(address) as reply:
            return reply.read()
