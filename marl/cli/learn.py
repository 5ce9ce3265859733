"""``marl-learn``: train from an ``mlagents-learn``-style YAML with ``mlagents-learn``'s flags.

Precedence (as ML-Agents): a flag whose value differs from its default beats the YAML, which
beats the defaults.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from marl.config import ConfigError, RunConfig, load_config, parse_config

# flag -> (config section, key); flags not listed here are handled by hand.
FLAG_TARGETS = {
    "env_path": ("env_settings", "env_path"),
    "env_args": ("env_settings", "env_args"),
    "base_port": ("env_settings", "base_port"),
    "num_envs": ("env_settings", "num_envs"),
    "num_areas": ("env_settings", "num_areas"),
    "seed": ("env_settings", "seed"),
    "timeout_wait": ("env_settings", "timeout_wait"),
    "max_lifetime_restarts": ("env_settings", "max_lifetime_restarts"),
    "restarts_rate_limit_n": ("env_settings", "restarts_rate_limit_n"),
    "restarts_rate_limit_period_s": ("env_settings", "restarts_rate_limit_period_s"),
    "width": ("engine_settings", "width"),
    "height": ("engine_settings", "height"),
    "quality_level": ("engine_settings", "quality_level"),
    "time_scale": ("engine_settings", "time_scale"),
    "target_frame_rate": ("engine_settings", "target_frame_rate"),
    "capture_frame_rate": ("engine_settings", "capture_frame_rate"),
    "no_graphics": ("engine_settings", "no_graphics"),
    "run_id": ("checkpoint_settings", "run_id"),
    "initialize_from": ("checkpoint_settings", "initialize_from"),
    "resume": ("checkpoint_settings", "resume"),
    "force": ("checkpoint_settings", "force"),
    "inference": ("checkpoint_settings", "inference"),
    "results_dir": ("checkpoint_settings", "results_dir"),
    "device": ("torch_settings", "device"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="marl-learn", description="Train multi-agent behaviors from an mlagents-learn-style YAML.")
    p.add_argument("trainer_config_path", nargs="?", help="YAML run config (e.g. configs/mappo/simple_spread.yaml)")
    p.add_argument("--env", dest="env_path", default=None,
                   help="env id (mpe2.simple_spread_v3, openspiel:connect_four, pkg.module:factory) or a Unity build path")
    p.add_argument("--run-id", default="ppo", help="name of this run; results go to <results-dir>/<run-id> (default: ppo)")
    p.add_argument("--resume", action="store_true", help="continue the run from its latest checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite an existing run with the same run-id")
    p.add_argument("--initialize-from", metavar="RUN_ID", default=None, help="start from another run's weights (step count restarts)")
    p.add_argument("--seed", type=int, default=-1, help="random seed (-1 = random)")
    p.add_argument("--inference", action="store_true", help="run the trained policies greedily without training")
    p.add_argument("--base-port", type=int, default=5005, help="Unity: port of worker 0 (worker i uses base+i)")
    p.add_argument("--num-envs", type=int, default=1, help="env worker processes (1 = in-process)")
    p.add_argument("--num-areas", type=int, default=1, help="env copies per worker (ML-Agents' training areas)")
    p.add_argument("--env-args", nargs=argparse.REMAINDER, default=None, help="arguments passed to the Unity executable")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--timeout-wait", type=int, default=60, help="Unity: seconds to wait for the player to connect")
    p.add_argument("--max-lifetime-restarts", type=int, default=10)
    p.add_argument("--restarts-rate-limit-n", type=int, default=1)
    p.add_argument("--restarts-rate-limit-period-s", type=int, default=60)
    eng = p.add_argument_group("engine configuration (Unity)")
    eng.add_argument("--width", type=int, default=84)
    eng.add_argument("--height", type=int, default=84)
    eng.add_argument("--quality-level", type=int, default=5)
    eng.add_argument("--time-scale", type=float, default=20.0)
    eng.add_argument("--target-frame-rate", type=int, default=-1)
    eng.add_argument("--capture-frame-rate", type=int, default=60)
    eng.add_argument("--no-graphics", action="store_true")
    p.add_argument("--torch-device", dest="device", default=None, help="cpu, cuda, cuda:1 ...")
    p.add_argument("--debug", action="store_true", help="full tracebacks")
    return p


def resolve_config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> RunConfig:
    """Apply non-default flags over the YAML (ML-Agents' precedence) and validate.

    Raises:
        ConfigError: bad YAML, bad flag value.
    """
    if args.trainer_config_path:
        cfg = load_config(args.trainer_config_path)
        data = cfg.model_dump(mode="json", exclude_unset=False)
        source = args.trainer_config_path
    else:
        data, source = {}, "<command line>"
    for flag, (section, key) in FLAG_TARGETS.items():
        value = getattr(args, flag)
        if value != parser.get_default(flag):
            data.setdefault(section, {})[key] = value
    if args.debug:
        data["debug"] = True
    if data.get("default_settings") is None:
        data.pop("default_settings", None)
    return parse_config(data, source)


def _stop_on_signals() -> dict | None:
    """Make Ctrl-C (SIGINT) and SIGTERM (cloud preemption, ``docker stop``, ``kill``) end training cleanly.

    The first signal raises ``KeyboardInterrupt`` in the training loop, which saves a resumable
    checkpoint (``--resume``); later ones are ignored so they cannot cut that save short. SIGINT is
    re-armed explicitly because a shell starts background jobs (``marl-learn ... &``) with SIGINT
    ignored, and Python then never raises ``KeyboardInterrupt``.

    Returns:
        the previous handlers (for :func:`_restore_signals`), or None off the main thread.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def interrupt(signum, frame):
        for s in previous:
            signal.signal(s, signal.SIG_IGN)  # saving now: a second Ctrl-C must not lose the checkpoint
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for s in previous:
        signal.signal(s, interrupt)
    return previous


def _restore_signals(previous: dict | None) -> None:
    import signal

    for s, handler in (previous or {}).items():
        signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from rich.console import Console

    console = Console(stderr=False)
    try:
        cfg = resolve_config(args, parser)
        from marl.run import prepare_run_dir, train

        if cfg.checkpoint_settings.inference:
            from marl.evaluate import evaluate_run, print_report

            run_dir = Path(cfg.checkpoint_settings.results_dir) / cfg.checkpoint_settings.run_id
            print_report(evaluate_run(run_dir, episodes=100, seed=max(cfg.env_settings.seed, 0), env_path=cfg.env_settings.env_path), console)
            return 0
        run_dir = prepare_run_dir(cfg)
        previous = _stop_on_signals()
        try:
            console.print(f"[INFO] Run '{cfg.checkpoint_settings.run_id}' -> {run_dir}", markup=False, highlight=False,
                          soft_wrap=True)
            train(cfg, run_dir, console=console)
        except KeyboardInterrupt:  # before or after the training loop (which saves on its own)
            print("interrupted before training started or after it ended; nothing more to save", file=sys.stderr)
            return 130
        finally:
            _restore_signals(previous)
        return 0
    except Exception as exc:  # one line for known problems; a traceback only with --debug
        from envs.registry import EnvError
        from marl.checkpoint import CheckpointError
        from marl.run import RunError

        known = (ConfigError, EnvError, CheckpointError, RunError)
        if args.debug or not isinstance(exc, known):
            if not isinstance(exc, known):
                console.print(f"error: unexpected {type(exc).__name__}: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
