"""Documents by index, for `data prepare`: any range can be read by any worker process.

`sources.Source.documents()` yields a whole corpus in one pass; preparing in parallel needs
random access instead: a `DocumentTable` (picklable, small) knows how many documents there
are and reads documents [start, stop) itself, from files or from a prepared TFDS dataset.
Documents and ids are those of the corresponding in-memory corpus (`stdlib`, `text:...`,
`tfds:NAME`), in the same order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lab.data.errors import DataError

TFDS_READ_BATCH = 256


@dataclasses.dataclass(frozen=True)
class DocumentTable:
    """`count` documents of one corpus; `key` is the cheap source key (stats or dataset metadata)."""

    name: str
    key: dict[str, Any]
    count: int
    files: tuple[str, ...] = ()  # file corpora: one file per document
    ids: tuple[str, ...] = ()
    tfds: tuple[str, str, str] | None = None  # (name, split, data_dir)

    def read(self, start: int, stop: int) -> Iterator[tuple[str, str]]:
        """(doc_id, text) of documents start..stop-1, in corpus order."""
        if self.tfds is None:
            for path, doc_id in zip(self.files[start:stop], self.ids[start:stop], strict=True):
                yield doc_id, Path(path).read_bytes().decode("utf-8", errors="replace")
            return
        name, split, data_dir = self.tfds
        from lab.data.sources import open_tfds, tfds_text

        source, field = open_tfds(name, split, Path(data_dir))
        for first in range(start, stop, TFDS_READ_BATCH):
            indices = list(range(first, min(first + TFDS_READ_BATCH, stop)))
            for index, example in zip(indices, source.__getitems__(indices), strict=True):
                yield f"{split}/{index}", tfds_text(example[field])


def document_table(corpus: str, split: str, data_dir: Path) -> DocumentTable:
    """The documents of a corpus name ('stdlib', 'text:...', 'tfds:NAME[/CONFIG]')."""
    from lab.data import sources

    if corpus == "stdlib":
        root, files = sources.stdlib_files()
        source = sources.stdlib_source()
        ids = [f.relative_to(root).as_posix() for f in files]
        return DocumentTable(corpus, source.key, len(files), tuple(map(str, files)), tuple(ids))
    if corpus.startswith("text:"):
        files, ids = sources.text_files(corpus[5:])
        key = {"stat": sources.stat_digest(files, ids)}
        return DocumentTable(corpus, key, len(files), tuple(map(str, files)), tuple(ids))
    if corpus.startswith("tfds:"):
        name = corpus[5:]
        key = sources.tfds_source(name, split, data_dir).key  # checks it is prepared as ArrayRecord
        source, _ = sources.open_tfds(name, split, data_dir)
        return DocumentTable(corpus, key, len(source), tfds=(name, split, str(data_dir)))
    raise DataError(
        f"cannot prepare {corpus!r}: give 'stdlib', 'text:PATH[,PATH...]' or 'tfds:NAME[/CONFIG]' "
        "(the synthetic corpus is generated in memory and needs no preparing)"
    )
