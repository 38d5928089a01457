"""Remote (gs://) I/O: the one owner of retries and of GCS's conditional writes.

Object stores fail transiently (429, 5xx, a dropped connection); every remote read or write
the lab makes itself goes through `retrying`, exponential backoff with jitter (tenacity).
Orbax's checkpoint data goes through TensorStore, which retries on its own.

Claims need what a filesystem path cannot say: create this object only if it is absent,
replace or delete it only if it is still the version we read. GCS does that with generation
preconditions (`if_generation_match`; 0 means "no live object"), reached here through
google-cloud-storage. A precondition that fails is an answer (False), never retried. When a
conditional write is retried after a lost response, its own first attempt may be what makes
the retry fail; callers check the content (claims carry a token) before believing they lost.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
ATTEMPTS = 6


def _status(error: BaseException) -> int | None:
    for name in ("code", "status", "status_code"):
        value = getattr(error, name, None)
        if isinstance(value, int):
            return value
    return None


def is_transient(error: BaseException) -> bool:
    """Worth another try: a throttle, a server error, a connection dropped or timed out."""
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return False
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    if _status(error) in TRANSIENT_STATUS:
        return True
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(
        names & {"ClientConnectionError", "ServerDisconnectedError", "ChunkedEncodingError"}
    )


def retrying(fn: Callable[..., T], *, wait_s: float = 0.5) -> Callable[..., T]:
    """`fn` retried on transient errors: up to 6 tries, waits drawn from [0, wait_s * 2^k]
    (capped at 20 s: exponential backoff with full jitter, so contending workers spread out).
    (tenacity comes with the `cloud` extra, imported only when a remote call is made.)"""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> T:
        import tenacity

        for attempt in tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            wait=tenacity.wait_random_exponential(multiplier=wait_s, max=20.0),
            stop=tenacity.stop_after_attempt(ATTEMPTS),
            reraise=True,
        ):
            with attempt:
                return fn(*args, **kwargs)
        raise AssertionError("unreachable: tenacity reraises the last error")

    return call


def split_gs(path: str) -> tuple[str, str]:
    """'gs://bucket/a/b' -> ('bucket', 'a/b')."""
    text = str(path)
    if not text.startswith("gs://"):
        raise ValueError(f"not a gs:// path: {text}")
    bucket, _, key = text[len("gs://") :].partition("/")
    return bucket, key


@functools.cache
def _client() -> Any:
    """One google-cloud-storage client per process (it honours STORAGE_EMULATOR_HOST)."""
    from google.cloud import storage

    return storage.Client()


def reset_clients() -> None:
    """Forget the cached client (tests point the process at a new endpoint)."""
    _client.cache_clear()


def _blob(path: str) -> Any:
    bucket, key = split_gs(path)
    return _client().bucket(bucket).blob(key)


def _precondition_failed(error: BaseException) -> bool:
    return _status(error) == 412


@retrying
def read_versioned(path: str) -> tuple[bytes, int] | None:
    """(content, generation) of the object, or None if there is none.

    The generation comes from the object's metadata and the download is pinned to it
    (`if_generation_match`), so content and generation belong together; an object replaced
    in between is read again."""
    from google.api_core import exceptions

    bucket, key = split_gs(path)
    for _ in range(ATTEMPTS):
        blob = _client().bucket(bucket).get_blob(key)
        if blob is None:
            return None
        generation = int(blob.generation)
        try:
            return blob.download_as_bytes(if_generation_match=generation), generation
        except exceptions.NotFound:
            return None
        except Exception as error:
            if not _precondition_failed(error):
                raise
    raise TimeoutError(f"{path} kept changing while being read ({ATTEMPTS} tries)")


@retrying
def write_if_generation(path: str, data: bytes, generation: int) -> bool:
    """Write the object only if its generation is `generation` (0: only if absent)."""
    try:
        _blob(path).upload_from_string(data, if_generation_match=generation)
    except Exception as error:
        if _precondition_failed(error):
            return False
        raise
    return True


@retrying
def delete_if_generation(path: str, generation: int) -> bool:
    """Delete the object only if it is still at `generation`; False if it changed or is gone."""
    from google.api_core import exceptions

    try:
        _blob(path).delete(if_generation_match=generation)
    except exceptions.NotFound:
        return False
    except Exception as error:
        if _precondition_failed(error):
            return False
        raise
    return True
