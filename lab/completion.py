"""A trained run's checkpoint -> text: the API behind `scaling-lab sample` and `sweep samples`.

    run = load_run("runs/demo/runs/<id>")                 # params only, on the run's mesh
    texts = complete(run, "def ", max_new_tokens=64, sampling=SamplingConfig(top_p=0.9))

Only the parameters are restored (not the optimizer state), onto the shardings built from the
run's own config.json, so a model decodes on the mesh it trained on (or on `mesh=`). The prompt
is encoded with the run's tokenizer after one EOS: training packs documents as
`tokens + [EOS]`, so an EOS is how the model knows a document starts; an empty prompt
therefore asks for the start of a new document. JAX loads only inside the functions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lab.errors import ConfigError

if TYPE_CHECKING:
    from lab.sampling import SamplingConfig


class SampleError(ConfigError):
    """The run cannot be sampled (no checkpoint, unknown step, ...); the message says the fix."""


@dataclasses.dataclass
class LoadedRun:
    """A run's config, restored parameters (sharded on `mesh`), tokenizer and checkpoint step."""

    run_dir: Path
    config: Any  # lab.run_config.RunConfig
    params: Any
    tokenizer: Any
    mesh: Any
    step: int


def load_run(run_dir: str | Path, step: int | None = None, mesh: Any = None) -> LoadedRun:
    """Restore the parameters of RUN_DIR's latest checkpoint (or `step`) and its tokenizer."""
    from lab import run_dir as run_files
    from lab.checkpoint import checkpoint_steps

    run_dir = Path(run_dir)
    config = run_files.read_config(run_dir)
    steps = checkpoint_steps(run_files.checkpoint_dir(run_dir))
    if not steps:
        raise SampleError(
            f"{run_dir} has no checkpoint to sample from (finished runs drop their weights "
            "unless keep_final_checkpoint = true); train it again with "
            "--set keep_final_checkpoint=true"
        )
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise SampleError(f"{run_dir} has no checkpoint at step {step}; it has steps {steps}")
    from lab.data import load_corpus
    from lab.sharding import make_mesh

    tokenizer = load_corpus(config.data).tokenizer
    mesh = make_mesh(config.mesh if mesh is None else mesh)
    params = _restore_params(run_files.checkpoint_dir(run_dir), step, config.model, mesh)
    return LoadedRun(run_dir, config, params, tokenizer, mesh, step)


def _restore_params(folder: Path, step: int, model: Any, mesh: Any) -> Any:
    """Only `params` of the saved TrainState, onto the training shardings (partial restore)."""
    from lab.checkpoint import restore_params
    from lab.sharding import sharded_abstract_params

    params_like = sharded_abstract_params(model, mesh)
    try:
        return restore_params(folder, step, params_like)
    except (ValueError, KeyError, FileNotFoundError) as error:
        raise SampleError(
            f"cannot restore the parameters of {folder}/{step} with the run's config "
            f"({type(error).__name__}: {str(error)[:300]}); was the checkpoint written by "
            "this config?"
        ) from None


def prompt_ids(tokenizer: Any, text: str) -> np.ndarray:
    """int32 [T]: EOS (the document boundary the model trained on), then the encoded text."""
    ids = np.asarray(tokenizer.encode(text), np.int32).reshape(-1)
    return np.concatenate([np.array([tokenizer.eos_id], np.int32), ids])


def complete(
    run: LoadedRun,
    prompt: str,
    *,
    max_new_tokens: int = 64,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    num_samples: int = 1,
) -> list[str]:
    """`num_samples` completions of `prompt` (the new text only, cut at EOS); default
    sampling: the model's distribution at temperature 1."""
    from lab.decode import generate, until_eos
    from lab.sampling import DEFAULT_SAMPLING

    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise SampleError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    tok = run.tokenizer
    ids_T = prompt_ids(tok, prompt)
    tokens_BxN = generate(
        run.params,
        run.config.model,
        np.repeat(ids_T[None], num_samples, axis=0),
        max_new_tokens=max_new_tokens,
        sampling=sampling or DEFAULT_SAMPLING,
        seed=seed,
        eos_id=tok.eos_id,
        pad_id=tok.pad_id,
        mesh=run.mesh,
    )
    return [tok.decode(until_eos(row, tok.eos_id)) for row in tokens_BxN]
