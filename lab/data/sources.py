"""Where documents come from: stdlib files, local text files (via TFDS), prepared TFDS datasets.

A `Source` has a cheap `key` (file names, sizes and mtimes, or dataset metadata: no content
read) that addresses the token cache, and `documents()` that yields (doc_id, text) in a fixed
order when the cache must be built. The recorded fingerprint is of the content itself
(see `lab.data.corpus`).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lab.data.errors import DataError
from lab.data.textds import BUILDER_NAME, build_text_dataset, quiet_absl

# The stdlib corpus: every .py file of the interpreter's stdlib except test suites, IDLE,
# lib2to3 and installed packages. Directories with these names are pruned at any depth.
STDLIB_EXCLUDED_DIRS = frozenset(
    {
        "test",
        "tests",
        "idle_test",
        "idlelib",
        "lib2to3",
        "site-packages",
        "dist-packages",
        "__pycache__",
    }
)


@dataclasses.dataclass(frozen=True)
class Source:
    """A corpus's documents, addressed by a cheap key."""

    name: str
    key: dict[str, Any]
    documents: Callable[[], Iterator[tuple[str, str]]]


def stat_digest(files: list[Path], ids: list[str]) -> str:
    """Hash of (id, size, mtime) per file: changes when a file is edited, costs no reads."""
    h = hashlib.sha256()
    for path, doc_id in zip(files, ids, strict=True):
        st = path.stat()
        h.update(f"{doc_id}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _read_files(files: list[Path], ids: list[str]) -> Iterator[tuple[str, str]]:
    for path, doc_id in zip(files, ids, strict=True):
        yield doc_id, path.read_bytes().decode("utf-8", errors="replace")


def stdlib_files() -> tuple[Path, list[Path]]:
    """The stdlib root and its .py files in sorted relative-path order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in STDLIB_EXCLUDED_DIRS)
        files.extend(Path(dirpath) / f for f in filenames if f.endswith(".py"))
    return root, sorted(files, key=lambda p: p.relative_to(root).as_posix())


def stdlib_source() -> Source:
    root, files = stdlib_files()
    if not files:
        raise DataError(f"no .py files under the stdlib directory {root}; use another corpus")
    ids = [f.relative_to(root).as_posix() for f in files]
    key = {"python": sys.version.split()[0], "root": str(root), "stat": stat_digest(files, ids)}
    return Source("stdlib", key, lambda: _read_files(files, ids))


def text_files(spec: str) -> tuple[list[Path], list[str]]:
    """Files named by 'PATH[,PATH...]' (globs, directories recursively); ids relative to their common dir."""
    files: list[Path] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        pattern = os.path.expanduser(part)
        matches = (
            sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        )
        if not matches or not all(os.path.exists(m) for m in matches):
            raise DataError(f"text corpus path {part!r} matches no file; check the path or glob")
        for match in matches:
            path = Path(match).resolve()
            if path.is_dir():
                files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
            else:
                files.append(path)
    files = sorted(dict.fromkeys(files))
    if len(files) < 2:
        raise DataError(
            f"text corpus {spec!r} has {len(files)} file(s); one file is one document and the "
            "held-out split needs whole documents, so give at least 2 (split a big file into parts)"
        )
    common = Path(os.path.commonpath([f.parent for f in files]))
    return files, [f.relative_to(common).as_posix() for f in files]


def text_source(spec: str, data_dir: Path) -> Source:
    files, ids = text_files(spec)
    stat = stat_digest(files, ids)
    build_dir = data_dir / "text" / stat[:20]

    def documents() -> Iterator[tuple[str, str]]:
        if not (build_dir / BUILDER_NAME / "1.0.0" / "dataset_info.json").exists():
            build_text_dataset(files, ids, build_dir)
        yield from _tfds_documents(BUILDER_NAME, "train", build_dir, "text", order_key="index")

    return Source(f"text:{spec}", {"stat": stat}, documents)


def _prepare_hint(name: str, data_dir: Path) -> str:
    return (
        "prepare it once on a machine with network access:\n"
        f"  pip install tensorflow tensorflow-datasets && tfds build {name} "
        f"--data_dir {data_dir} --file_format array_record\n"
        "or in Python:\n"
        f"  tfds.builder({name!r}, data_dir={str(data_dir)!r})"
        ".download_and_prepare(file_format='array_record')\n"
        f"then copy {data_dir / name.split('/')[0]} to this machine (or pass --data-dir)"
    )


def _prepared_dirs(name: str, data_dir: Path) -> list[Path]:
    """Version directories of a prepared dataset: DATA_DIR/NAME[/CONFIG]/VERSION/dataset_info.json."""
    base = data_dir.joinpath(*name.split("/"))
    return sorted(p.parent for p in base.glob("*/dataset_info.json"))


def tfds_source(name: str, split: str, data_dir: Path) -> Source:
    versions = _prepared_dirs(name, data_dir)
    if not versions:
        raise DataError(
            f"TFDS dataset {name!r} is not prepared in {data_dir}; " + _prepare_hint(name, data_dir)
        )
    info_path = versions[-1] / "dataset_info.json"
    info = json.loads(info_path.read_text())
    file_format = info.get("fileFormat", "tfrecord")
    if file_format != "array_record":
        raise DataError(
            f"TFDS dataset {name!r} in {versions[-1]} is stored as {file_format}, but reading "
            "without TensorFlow needs ArrayRecord; rebuild it with --file_format array_record, "
            f"e.g.\n  {_prepare_hint(name, data_dir)}"
        )
    features = json.dumps(info.get("splits", []), sort_keys=True)
    key = {
        "name": name,
        "split": split,
        "dir": str(versions[-1]),
        "info": hashlib.sha256(features.encode()).hexdigest(),
    }

    def documents() -> Iterator[tuple[str, str]]:
        yield from _tfds_documents(name, split, data_dir, None)

    return Source(f"tfds:{name}", key, documents)


def open_tfds(name: str, split: str, data_dir: Path) -> tuple[Any, str]:
    """A prepared ArrayRecord TFDS split opened with `tfds.data_source`, and its text feature."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise DataError(
            "tensorflow-datasets is not installed; `pip install tensorflow-datasets` "
            "(TensorFlow itself is not needed) or use the stdlib or synthetic corpus"
        ) from error
    quiet_absl()
    try:
        source = tfds.data_source(name, split=split, data_dir=str(data_dir), download=False)
    except Exception as error:  # tfds raises many types; turn all into one clear message
        raise DataError(
            f"cannot open TFDS dataset {name!r} split {split!r} in {data_dir}: {error}\n"
            + _prepare_hint(name, data_dir)
        ) from error
    return source, _text_field(source, name)


def tfds_text(value: Any) -> str:
    """A TFDS Text feature's value as str (bytes are UTF-8, bad bytes replaced)."""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _tfds_documents(
    name: str, split: str, data_dir: Path, field: str | None, order_key: str | None = None
) -> Iterator[tuple[str, str]]:
    """(id, text) of every example of a prepared ArrayRecord dataset, read with tfds.data_source."""
    source, text_field = open_tfds(name, split, data_dir)
    field = field or text_field
    batches = (
        source.__getitems__(list(range(start, min(start + 1024, len(source)))))
        for start in range(0, len(source), 1024)
    )
    examples: Iterator[dict] = (ex for batch in batches for ex in batch)
    if order_key is not None:  # small local builds only: restore the file order
        examples = iter(sorted(examples, key=lambda ex: int(ex[order_key])))
    for i, ex in enumerate(examples):
        raw_id = ex.get("id") if order_key else None
        doc_id = raw_id.decode() if isinstance(raw_id, bytes) else f"{split}/{i}"
        yield doc_id, tfds_text(ex[field])


def _text_field(source: Any, name: str) -> str:
    """The dataset's text feature: 'text' if present, else its only string feature."""
    features = source.dataset_info.features
    names = list(features.keys())
    if "text" in names:
        return "text"
    strings = [k for k in names if type(features[k]).__name__ == "Text"]
    if len(strings) == 1:
        return strings[0]
    raise DataError(f"TFDS dataset {name!r} has features {names}; none is unambiguously its text")
