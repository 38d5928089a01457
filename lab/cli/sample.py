"""`scaling-lab sample RUN_DIR`: text from a trained run's checkpoint (`lab.completion`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import textwrap

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
    from lab.completion import SampleError, complete, load_run
    from lab.sampling import SamplingConfig

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
