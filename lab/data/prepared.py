"""`prepared:DIR` corpora: windows read from `data prepare`'s shards, never the whole corpus in memory.

`PreparedCorpus` has the interface of `Corpus` (fingerprint, tokenizer, summary, train_stream,
eval_batches), so training does not know where its tokens live. The window order is grain's:
window slot g reads window `MapDataset.range(n_windows).shuffle(seed)[g]`, an index shuffle
per epoch (a Feistel permutation computed per index, O(1) memory), where the in-memory
corpora draw a numpy permutation of all windows (O(windows) memory). Everything else is
`TokenStream`'s: windows of ctx+1 at stride ctx, exactly D tokens, per-process rows, and a
position that is one integer, so checkpoints resume bit-identically under any process layout.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from lab.data.config import DataConfig
from lab.data.errors import DataError
from lab.data.prepare import PACKING, PREPARED_FORMAT, PREPARED_VERSION
from lab.data.remote_dir import mirror_prepared
from lab.data.shards import ShardedTokens
from lab.data.stream import TokenStream
from lab.data.tokenizer_files import saved_tokenizer
from lab.runtime.atomic_io import as_path, is_remote, read_json


def _seed32(seed: int, salt: str) -> int:
    """A 32-bit shuffle seed (grain's limit) from any seed; the salt keeps train and eval apart."""
    return int.from_bytes(hashlib.sha256(f"{salt}\0{seed}".encode()).digest()[:4], "big")


def window_order(n_windows: int, seed: int, salt: str) -> Any:
    """grain MapDataset: [g] is the window of global slot g (epoch g // n_windows reshuffled)."""
    import grain

    return grain.MapDataset.range(n_windows).shuffle(seed=_seed32(seed, salt))


class PreparedStream(TokenStream):
    """`TokenStream` over shards on disk, ordered by grain's index shuffle."""

    def __init__(self, tokens: ShardedTokens, **kwargs: Any) -> None:
        super().__init__(tokens, **kwargs)  # type: ignore[arg-type]
        self._order = window_order(self.n_windows, self.seed, "train")

    def _windows(self, slot_G: np.ndarray) -> np.ndarray:
        order = self._order
        return np.asarray([order[int(g)] for g in slot_G.reshape(-1)], dtype=np.int64).reshape(
            slot_G.shape
        )

    def _read(self, window_W: np.ndarray) -> np.ndarray:
        return self._tokens_N.windows(window_W * self.ctx, self.ctx + 1)


class PreparedCorpus:
    """A prepared directory opened for training: manifest, tokenizer, shard readers."""

    def __init__(self, directory: str, manifest: dict[str, Any], config: DataConfig) -> None:
        root = as_path(directory)
        self.config = config
        self.cache_dir = root
        self.meta = manifest
        self.name: str = f"prepared:{directory}"
        self.fingerprint: str = manifest["fingerprint"]
        self.tokenizer = saved_tokenizer(manifest["tokenizer"]["spec"], root)
        shards = manifest["shards"]
        self.train_N, self.eval_N = (
            ShardedTokens(
                [str(root / "shards" / s[split]["file"]) for s in shards],
                [s[split]["tokens"] for s in shards],
                manifest["dtype"],
            )
            for split in ("train", "eval")
        )
        self.train_tokens = int(self.train_N.shape[0])
        self.eval_tokens = int(self.eval_N.shape[0])
        self.num_train_docs: int = manifest["totals"]["train"]["documents"]
        self.num_eval_docs: int = manifest["totals"]["eval"]["documents"]
        self.true_entropy: float | None = None

    def __repr__(self) -> str:
        return f"PreparedCorpus({self.name!r}, train_tokens={self.train_tokens}, fingerprint={self.fingerprint[:12]})"

    def summary(self) -> dict[str, Any]:
        """What `scaling-lab data` prints and what a run records about its data."""
        totals = self.meta["totals"]
        return {
            "corpus": self.name,
            "source": self.meta["name"],
            "fingerprint": self.fingerprint,
            "tokenizer": self.tokenizer.spec,
            "vocab_size": self.tokenizer.vocab_size,
            "token_dtype": self.meta["dtype"],
            "documents": self.num_train_docs + self.num_eval_docs,
            "bytes": totals["train"]["bytes"] + totals["eval"]["bytes"],
            "tokens": self.train_tokens + self.eval_tokens,
            "train_documents": self.num_train_docs,
            "eval_documents": self.num_eval_docs,
            "train_tokens": self.train_tokens,
            "eval_tokens": self.eval_tokens,
            "eval_fraction": self.meta["settings"]["eval_fraction"],
            "eval_seed": self.meta["settings"]["eval_seed"],
            "shards": len(self.meta["shards"]),
            "packing": PACKING,
            "prepared_dir": str(self.cache_dir),
        }

    def train_stream(
        self,
        *,
        ctx: int,
        batch_size: int,
        num_tokens: int,
        seed: int,
        process_index: int = 0,
        process_count: int = 1,
    ) -> PreparedStream:
        """Exactly num_tokens training tokens as shuffled ctx+1 windows read from the shards."""
        return PreparedStream(
            self.train_N,
            ctx=ctx,
            batch_size=batch_size,
            num_tokens=num_tokens,
            seed=seed,
            process_index=process_index,
            process_count=process_count,
            max_epochs=self.config.max_epochs,
            fingerprint=self.fingerprint,
        )

    def eval_batches(self, *, ctx: int, batch_size: int, num_batches: int) -> np.ndarray:
        """int32 [num_batches, batch_size, ctx+1] held-out windows; the same for every run of a sweep."""
        n_windows = (self.eval_tokens - 1) // ctx
        need = num_batches * batch_size
        if need > n_windows:
            raise DataError(
                f"the held-out split has {n_windows} windows of ctx+1 = {ctx + 1} tokens, fewer "
                f"than num_batches*batch_size = {need}; ask for at most {n_windows // batch_size} "
                "batch(es) or prepare with a larger --eval-fraction"
            )
        order = window_order(n_windows, self.config.eval_seed, "eval")
        window_W = np.asarray([order[i] for i in range(need)], dtype=np.int64)
        return self.eval_N.windows(window_W.reshape(num_batches, batch_size) * ctx, ctx + 1)


def prepared_options(directory: str) -> dict[str, Any]:
    """The tokenizer and split a prepared directory was made with ({} if it has no manifest)."""
    path = as_path(directory) / "manifest.json"
    if not path.exists():
        return {}
    manifest = read_json(path)
    settings = manifest.get("settings", {})
    return {
        "tokenizer": manifest.get("tokenizer", {}).get("spec"),
        "eval_fraction": settings.get("eval_fraction"),
        "eval_seed": settings.get("eval_seed"),
    }


def open_prepared(config: DataConfig) -> PreparedCorpus:
    """The corpus of `prepared:DIR`, after checking that `config` agrees with how it was prepared."""
    directory = config.corpus.split(":", 1)[1].strip()
    if is_remote(directory):  # array_record opens local files only: this host's own copy
        directory = str(mirror_prepared(directory))
    root = as_path(directory)
    manifest_path = root / "manifest.json"
    if not manifest_path.exists():
        if (root / "plan.json").exists():
            raise DataError(
                f"the prepare of {directory} has not finished; rerun the same `scaling-lab data "
                "prepare` command to finish it (finished shards are kept)"
            )
        raise DataError(
            f"no prepared corpus at {directory} (no manifest.json); create one with "
            f"`scaling-lab data prepare SOURCE --out {directory}`"
        )
    manifest = read_json(manifest_path)
    if manifest.get("format") != PREPARED_FORMAT or manifest.get("version") != PREPARED_VERSION:
        raise DataError(
            f"{manifest_path} is not a version-{PREPARED_VERSION} prepared corpus; prepare it again"
        )
    _check_agrees(config, manifest, directory)
    return PreparedCorpus(directory, manifest, config)


def _check_agrees(config: DataConfig, manifest: dict[str, Any], directory: str) -> None:
    """[data] options a prepared corpus fixed at prepare time must not silently differ."""
    settings, spec = manifest["settings"], manifest["tokenizer"]["spec"]
    if config.tokenizer != spec:
        raise DataError(
            f"{directory} was prepared with tokenizer {spec!r}; set [data] tokenizer = {spec!r}"
        )
    for key in ("eval_fraction", "eval_seed"):
        if getattr(config, key) != settings[key]:
            raise DataError(
                f"{directory} was prepared with {key} = {settings[key]!r}, not "
                f"{getattr(config, key)!r}; set [data] {key} = {settings[key]!r} or prepare again"
            )
    if config.tfds_split != "train" and config.tfds_split != settings.get("tfds_split"):
        raise DataError(
            f"the TFDS split of {directory} was fixed when it was prepared; leave [data] tfds_split out"
        )
    if config.unique_tokens is not None:
        raise DataError(
            "unique_tokens is not supported with a prepared corpus (the pool is built in memory); "
            "prepare a smaller corpus instead"
        )
