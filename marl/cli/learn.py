"""``marl-learn``: train from an ``mlagents-learn``-style YAML with ``mlagents-learn``'s flags.

Precedence (as ``mlagents-learn``): every flag typed on the command line beats the YAML, even when
its value equals the flag's default; the YAML beats the defaults. A flag's default and help are the
pydantic field of :mod:`marl.config` it sets (written once, there).
"""
from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from pydantic import ValidationError

from marl.config import ConfigError, RunConfig, check_device, parse_config, read_yaml

# flag dest -> (config section, key), in --help order; None as section = a top-level key.
FLAG_TARGETS = {
    "env_path": ("env_settings", "env_path"),
    "run_id": ("checkpoint_settings", "run_id"),
    "resume": ("checkpoint_settings", "resume"),
    "force": ("checkpoint_settings", "force"),
    "initialize_from": ("checkpoint_settings", "initialize_from"),
    "seed": ("env_settings", "seed"),
    "inference": ("checkpoint_settings", "inference"),
    "base_port": ("env_settings", "base_port"),
    "num_envs": ("env_settings", "num_envs"),
    "num_areas": ("env_settings", "num_areas"),
    "env_args": ("env_settings", "env_args"),
    "results_dir": ("checkpoint_settings", "results_dir"),
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
    "device": ("torch_settings", "device"),
    "ray": ("env_settings", "ray"),
    "ray_address": ("env_settings", "ray_address"),
    "debug": (None, "debug"),
}
FLAG_NAMES = {"env_path": "--env", "device": "--torch-device"}
"""dest -> option string where it is not ``--`` + the dest with dashes."""
FLAG_METAVARS = {"initialize_from": "RUN_ID"}


def flag_name(dest: str) -> str:
    """The option string of flag ``dest`` (``num_envs`` -> ``--num-envs``)."""
    return FLAG_NAMES.get(dest, "--" + dest.replace("_", "-"))


def _field(dest: str):
    """``(pydantic model, field name, FieldInfo)`` that flag ``dest`` sets."""
    section, key = FLAG_TARGETS[dest]
    model = RunConfig if section is None else RunConfig.model_fields[section].annotation
    return model, key, model.model_fields[key]


def build_parser() -> argparse.ArgumentParser:
    """The ``marl-learn`` parser. Every argument defaults to ``argparse.SUPPRESS``, so the parsed
    namespace holds exactly the flags the user typed (``--flag=value``, abbreviations, ``--env-args``
    REMAINDER included); types, defaults and help come from :mod:`marl.config`'s fields."""
    p = argparse.ArgumentParser(prog="marl-learn", argument_default=argparse.SUPPRESS,
                                description="Train multi-agent behaviors from an mlagents-learn-style YAML.")
    p.add_argument("trainer_config_path", nargs="?", help="YAML run config (e.g. configs/mappo/simple_spread.yaml)")
    eng = p.add_argument_group("engine configuration (Unity)")
    for dest, (section, _key) in FLAG_TARGETS.items():
        _model, _key, field = _field(dest)
        kinds = [a for a in typing.get_args(field.annotation) if a is not type(None)] or [field.annotation]
        kind = typing.get_origin(kinds[0]) or kinds[0]
        help_ = field.description or ""
        if field.default not in (None, False):
            help_ += f" (default: {field.default})"
        kw: dict = {"dest": dest, "help": help_.strip()}
        if kind is bool:
            kw["action"] = "store_true"
        elif kind is list:
            kw["nargs"] = argparse.REMAINDER
        else:
            kw["type"] = kind
            kw["metavar"] = FLAG_METAVARS.get(dest, {int: "N", float: "X"}.get(kind, dest.upper()))
        (eng if section == "engine_settings" else p).add_argument(flag_name(dest), **kw)
    return p


def typed_flags(args: argparse.Namespace) -> dict[str, typing.Any]:
    """The flags the user typed: ``{dest: value}`` (a namespace from :func:`build_parser`)."""
    return {k: v for k, v in vars(args).items() if k in FLAG_TARGETS}


def resolve_config(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> RunConfig:
    """The run config: every typed flag over the YAML over the defaults (``mlagents-learn``'s
    precedence), validated once.

    Args:
        args: parsed by :func:`build_parser` (untyped flags are absent from it).
        parser: unused; kept for callers of the older signature.

    Raises:
        ConfigError: bad YAML file or key (names file and key), bad flag value (names the flag).
    """
    path = getattr(args, "trainer_config_path", None)
    data = read_yaml(path) if path else {}
    source = path or "<command line>"
    if not isinstance(data, dict):
        return parse_config(data, source)  # raises: not a mapping
    for dest, value in typed_flags(args).items():
        model, key, _ = _field(dest)
        if model is not RunConfig:
            try:  # a bad value is the flag's fault, not the file's
                model.model_validate({key: value})
            except ValidationError as exc:
                msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
                shown = " ".join(value) if isinstance(value, list) else value
                raise ConfigError(f"{flag_name(dest)} {shown}: {msg}") from None
        section, key = FLAG_TARGETS[dest]
        if section is None:
            data[key] = value
            continue
        if data.get(section) is None:
            data[section] = {}
        if isinstance(data[section], dict):  # otherwise parse_config reports the section
            data[section][key] = value
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


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as one ``[WARNING] ...`` line (Python's default adds the source file and line)."""
    return f"[WARNING] {message}\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import warnings

    if not getattr(args, "debug", False):
        warnings.formatwarning = _one_line_warning
    from rich.console import Console

    console = Console(stderr=False)
    debug = getattr(args, "debug", False)
    try:
        cfg = resolve_config(args, parser)
        debug = debug or cfg.debug
        if not cfg.checkpoint_settings.inference:  # marl-evaluate plays on the CPU
            device = cfg.torch_settings.device
            check_device(device, f"--torch-device {device}" if "device" in typed_flags(args) else
                         f"{getattr(args, 'trainer_config_path', None)}: torch_settings.device")
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

        from marl.cli.common import unexpected_error_line

        if debug:
            raise
        if not isinstance(exc, (ConfigError, EnvError, CheckpointError, RunError)):
            print(unexpected_error_line(exc), file=sys.stderr)
            return 1
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
