"""Input paths for the analysis readers: a local file or directory, or a `gs://` URL.

A sweep trained into a bucket is fitted and reported straight from it (`scaling-lab fit
gs://bucket/study`). The training side's paths (etils.epath) are not available here: the
analysis installs numpy, scipy, pandas and matplotlib only, so a URL is read through fsspec
(gcsfs for gs://, from the `cloud` extra). Only what the readers need is offered: joining,
existence, directory test, bytes and text.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path, PurePosixPath

from analysis.errors import AnalysisError


def is_url(text: str | os.PathLike) -> bool:
    return "://" in str(text)


class UrlPath:
    """A read-only path on an fsspec filesystem (gs://, s3://, ...), pathlib-shaped."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        protocol = self.url.split("://", 1)[0]
        try:
            import fsspec

            self._fs = fsspec.filesystem(protocol)
        except (ImportError, ValueError) as error:
            raise AnalysisError(
                f"cannot read {self.url}: {error}; gs:// needs gcsfs "
                "(pip install 'scaling-lab[cloud]')"
            ) from None

    def __truediv__(self, name: str) -> UrlPath:
        return UrlPath(posixpath.join(self.url, name))

    def __str__(self) -> str:
        return self.url

    def __fspath__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"UrlPath({self.url!r})"

    @property
    def name(self) -> str:
        return PurePosixPath(self.url).name

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.url).suffix

    def exists(self) -> bool:
        return self._fs.exists(self.url)

    def is_dir(self) -> bool:
        return self._fs.isdir(self.url)

    def read_bytes(self) -> bytes:
        return self._fs.cat_file(self.url)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)


def input_path(source: str | os.PathLike) -> Path | UrlPath:
    """A local Path, or a UrlPath for a URL (never a local folder named `gs:`)."""
    text = str(source)
    return UrlPath(text) if is_url(text) else Path(text)
