"""Local text files as a TFDS dataset: one `GeneratorBasedBuilder`, written as ArrayRecord.

tfds 4.9 writes ArrayRecord through `download_and_prepare(file_format="array_record")` with no
TensorFlow installed (checked: the `array_record` package does the writing), and
`tfds.data_source` reads it back the same way as any prepared TFDS dataset. One file is one
document; `index` keeps the fixed file order (TFDS shuffles examples by key when writing).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

BUILDER_NAME = "scaling_lab_text"


def build_text_dataset(files: list[Path], ids: list[str], data_dir: Path) -> None:
    """Write `files` as the train split of `scaling_lab_text` under data_dir (once per key)."""
    import tensorflow_datasets as tfds

    class ScalingLabText(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """Documents of local text files; `index` is the file's position in the corpus order."""

        name = BUILDER_NAME
        # a one-part module name makes tfds skip its resource-path lookup of the builder's code
        # (which needs the optional `importlib_resources` package); there are no checksums
        __module__ = BUILDER_NAME
        VERSION = tfds.core.Version("1.0.0")

        def _info(self) -> tfds.core.DatasetInfo:
            features = tfds.features.FeaturesDict(
                {
                    "index": tfds.features.Scalar(dtype=np.int64),
                    "id": tfds.features.Text(),
                    "text": tfds.features.Text(),
                }
            )
            return tfds.core.DatasetInfo(builder=self, features=features)

        def _split_generators(self, dl_manager: object) -> dict[str, Iterator]:
            return {"train": self._generate_examples()}

        def _generate_examples(self) -> Iterator[tuple[int, dict]]:
            for index, (path, doc_id) in enumerate(zip(files, ids, strict=True)):
                text = path.read_bytes().decode("utf-8", errors="replace")
                yield index, {"index": index, "id": doc_id, "text": text}

    quiet_absl()
    builder = ScalingLabText(data_dir=str(data_dir))
    with contextlib.redirect_stdout(io.StringIO()):  # tfds prints "Downloading and preparing"
        builder.download_and_prepare(file_format="array_record")


def quiet_absl() -> None:
    """tfds logs progress bars and warnings through absl; keep the lab's output readable."""
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        import tensorflow_datasets as tfds

        tfds.disable_progress_bar()
    except ImportError:  # pragma: no cover - tfds is optional
        pass
