"""``marl-evaluate RUN_DIR``: play a trained run's policies greedily (or ``--random`` ones) and report their returns."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="marl-evaluate", description="Play trained policies without training.")
    p.add_argument("run_dir", help="results/<run-id>")
    p.add_argument("--episodes", type=int, default=100, help="episodes to play (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the greedy ones")
    p.add_argument("--checkpoint", default=None, help="a step number (<Behavior>-<step>.pt) or a checkpoint path; default: latest")
    p.add_argument("--random", action="store_true",
                   help="play uniformly random legal actions instead of the run's policies (the env's chance baseline)")
    p.add_argument("--env", dest="env_path", default=None, help="play on another env / build than the run's")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--debug", action="store_true", help="full tracebacks on errors")
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error("--episodes must be >= 1")
    if args.random and (args.checkpoint or args.stochastic):
        p.error("--random plays no checkpoint: drop --checkpoint/--stochastic")
    from envs.registry import EnvError
    from marl.checkpoint import CheckpointError
    from marl.config import ConfigError
    from marl.evaluate import evaluate_run, print_report

    from marl.cli.common import unexpected_error_line

    try:
        report = evaluate_run(args.run_dir, args.episodes, args.seed, args.stochastic, args.checkpoint, args.env_path,
                              random_baseline=args.random)
        print_report(report, None, as_json=args.json)
    except (CheckpointError, ConfigError, EnvError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # one line; the traceback only with --debug
        if args.debug:
            raise
        print(unexpected_error_line(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
