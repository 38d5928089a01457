"""`scaling-lab sample RUN_DIR`: text from a trained run's checkpoint, and the API behind it.

    run = load_run("runs/demo/runs/<id>")                 # params only, on the run's mesh
    texts = complete(run, "def ", max_new_tokens=64, sampling=SamplingConfig(top_p=0.9))

Only the parameters are restored (not the optimizer state), onto the shardings built from the
run's own config.json, so a model decodes on the mesh it trained on (or on `mesh=`). The prompt
is encoded with the run's tokenizer after one EOS: training packs documents as
`tokens + [EOS]`, so an EOS is how the model knows a document starts; an empty prompt
therefore asks for the start of a new document. JAX loads only inside the functions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lab.errors import ConfigError

if TYPE_CHECKING:
    from lab.sampling import SamplingConfig

SAMPLE_EPILOG = textwrap.dedent(
    """\
    Sampling: --greedy (or --temperature 0, or --top-k 1) takes the most probable token;
    otherwise tokens are drawn from softmax(logits / temperature), keeping only the --top-k
    most probable and/or the smallest set whose probability reaches --top-p. Generation
    stops after --max-new-tokens or at the end-of-document token. The prompt plus the new
    tokens must fit the model's context (ctx). Same --seed, same text.

    The run directory needs a checkpoint: sweeps keep the final one when the sweep file sets
    keep_final_checkpoint = true (cpu_tiny and cpu_study do).

    examples:
      scaling-lab sample runs/tiny --prompt "def main(" --max-new-tokens 80
      scaling-lab sample runs/demo/runs/<run_id> --prompt "import " --top-p 0.9 --seed 3
      scaling-lab sample runs/tiny --greedy --step 400 --num-samples 1
    """
)


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


def checkpoint_steps(run_dir: str | Path) -> list[int]:
    """Steps of the complete checkpoints in RUN_DIR/checkpoints (orbax step folders)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and p.is_dir())


def load_run(run_dir: str | Path, step: int | None = None, mesh: Any = None) -> LoadedRun:
    """Restore the parameters of RUN_DIR's latest checkpoint (or `step`) and its tokenizer."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise SampleError(
            f"{run_dir} is not a run directory (no config.json); give the directory that "
            "`scaling-lab train --out` or a sweep (DIR/runs/<run_id>) wrote"
        )
    from lab.run_config import RunConfig

    config = RunConfig.from_dict(json.loads(config_path.read_text()))
    steps = checkpoint_steps(run_dir)
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
    params = _restore_params(run_dir / "checkpoints", step, config.model, mesh)
    return LoadedRun(run_dir, config, params, tokenizer, mesh, step)


def _restore_params(folder: Path, step: int, model: Any, mesh: Any) -> Any:
    """Only `params` of the saved TrainState, onto the training shardings (partial restore)."""
    import flax.linen as nn
    import jax
    import orbax.checkpoint as ocp

    from lab.train_step import _abstract_params, param_shardings

    shapes = nn.meta.unbox(_abstract_params(model))
    item = {
        "params": jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            shapes,
            param_shardings(model, mesh),
        )
    }
    manager = ocp.CheckpointManager(
        folder.absolute(),
        item_handlers={"state": ocp.PyTreeCheckpointHandler()},
        options=ocp.CheckpointManagerOptions(create=False),
    )
    try:
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(
                    item,
                    restore_args=ocp.checkpoint_utils.construct_restore_args(item),
                    partial_restore=True,
                )
            ),
        )
    except (ValueError, KeyError, FileNotFoundError) as error:
        raise SampleError(
            f"cannot restore the parameters of {folder}/{step} with the run's config "
            f"({type(error).__name__}: {str(error)[:300]}); was the checkpoint written by "
            "this config?"
        ) from None
    finally:
        manager.close()
    return restored["state"]["params"]


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


def register(subparsers: argparse._SubParsersAction) -> None:
    sample = subparsers.add_parser(
        "sample",
        help="generate text from a trained run's checkpoint (KV-cache decoding)",
        description="Load a run's final (or --step) checkpoint and its tokenizer, and complete "
        "a prompt with the trained model.",
        epilog=SAMPLE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sample.add_argument("run_dir", metavar="RUN_DIR", help="run directory (holds checkpoints/)")
    sample.add_argument("--prompt", default="", help="text to continue (default: empty)")
    sample.add_argument("--max-new-tokens", type=int, default=64, help="at most this many tokens")
    sample.add_argument(
        "--temperature", type=float, default=1.0, help="logits / T; 0 = greedy (default 1)"
    )
    sample.add_argument("--top-k", type=int, help="keep the k most probable tokens")
    sample.add_argument("--top-p", type=float, help="keep the nucleus of probability p, (0, 1]")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.add_argument("--greedy", action="store_true", help="always the most probable token")
    sample.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    sample.add_argument("--num-samples", type=int, default=1, help="completions to draw")
    sample.add_argument("--mesh", help="data,fsdp,tensor to decode on (default: the run's mesh)")
    sample.add_argument("--json", action="store_true", help="print a JSON record")
    sample.set_defaults(func=_sample)


def _sample(args: argparse.Namespace) -> int:
    from lab.sampling import SamplingConfig

    try:
        sampling = SamplingConfig(
            temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, greedy=args.greedy
        )
        if args.max_new_tokens < 1:
            raise SampleError(f"--max-new-tokens must be >= 1, got {args.max_new_tokens}")
        run = load_run(args.run_dir, args.step, args.mesh)
        texts = complete(
            run,
            args.prompt,
            max_new_tokens=args.max_new_tokens,
            sampling=sampling,
            seed=args.seed,
            num_samples=args.num_samples,
        )
    except ConfigError as error:
        print(f"scaling-lab sample: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        record = {
            "run_dir": str(run.run_dir),
            "step": run.step,
            "prompt": args.prompt,
            "sampling": dataclasses.asdict(sampling),
            "seed": args.seed,
            "completions": texts,
        }
        print(json.dumps(record, indent=2))
        return 0
    for i, text in enumerate(texts):
        if len(texts) > 1:
            print(f"--- sample {i + 1} (seed {args.seed}, step {run.step})")
        print(args.prompt + text)
    return 0
