"""The training run: env workers, trainer, summaries, checkpoints, resume and Ctrl-C.

Units: every step count here is *env steps* (one joint step of one env copy), summed over the
``E = num_envs * num_areas`` copies.
"""
from __future__ import annotations

import random
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from envs.registry import is_executable_path
from envs.vector import VecEnv, cpu_count, default_factory
from marl.algos.factory import make_trainer
from marl import grow
from marl.heap import limit_heap_growth, release_free_memory
from marl.checkpoint import (FORMAT, CheckpointError, CheckpointManager, TrainingStatus, load_checkpoint, saved_agent_slots,
                             spec_from_dict, spec_to_dict)
from marl.config import ConfigError, RunConfig
from marl.io import atomic_write_json, atomic_write_text
from marl.reporting import StatsReporter


class RunError(RuntimeError):
    """A run that cannot start or continue (one line for the user)."""


def prepare_run_dir(cfg: RunConfig) -> Path:
    """Check ``results/<run-id>`` against ``--resume`` / ``--force`` (ML-Agents' rules) and create it.

    Raises:
        RunError: the run exists without ``--resume``/``--force``, or ``--resume`` finds nothing.
    """
    ck = cfg.checkpoint_settings
    run_dir = Path(ck.results_dir) / ck.run_id
    exists = (run_dir / "run_logs" / "training_status.json").exists() or any(run_dir.glob("*/checkpoint.pt"))
    if ck.resume or ck.inference:
        if not exists:
            raise RunError(f"Previous data from this run ID ({ck.run_id}) was not found in {run_dir}. "
                           "Train a new run by removing the --resume flag.")
    elif exists:
        if not ck.force:
            raise RunError(f"Previous data from this run ID ({ck.run_id}) was found in {run_dir}. Either specify a "
                           "new run ID, use --resume to resume this run, or use the --force parameter to overwrite "
                           "existing data.")
        shutil.rmtree(run_dir)
    (run_dir / "run_logs").mkdir(parents=True, exist_ok=True)
    return run_dir


def env_factory(cfg: RunConfig, run_dir: Path | None = None, parameters_required: bool = True) -> tuple[str, Callable]:
    """``(env id, picklable factory for VecEnv)`` for the env named by ``env_settings.env_path``.
    ``environment_parameters`` start at their first lesson; an in-process env that reads none stops the
    run, or only warns with ``parameters_required=False`` (evaluating a run).

    Raises:
        ConfigError: no env given.
    """
    es = cfg.env_settings
    if not es.env_path:
        raise ConfigError("env_settings.env_path: no environment given; set it in the YAML or pass --env "
                          "(e.g. --env mpe2.simple_spread_v3)")
    if is_executable_path(es.env_path):
        from envs.unity import unity_factory  # Unity builds (envs/unity)

        return es.env_path, unity_factory(cfg, run_dir)
    from envs.unity.parameters import current_values  # curricula start at their first lesson

    params = current_values(cfg.model_dump(mode="json")["environment_parameters"])
    return es.env_path, default_factory(es.env_path, es.env_kwargs, es.behavior_map, es.supersuit, es.image_layout,
                                        params or None, parameters_required, needs_state(cfg))


STATELESS_TRAINERS = ("ippo", "poca")
"""Trainer types that never read the env's global state (critics on observations, MA-POCA's attention)."""


def needs_state(cfg: RunConfig) -> bool:
    """Whether some trainer of the run reads ``env.state()`` (MAPPO's centralised critic, QMIX/VDN's mixer);
    when none does, the env copies skip computing it."""
    types = [cfg.behavior_settings(b).trainer_type for b in cfg.behaviors]
    if cfg.default_settings is not None:
        types.append(cfg.default_settings.trainer_type)
    return not all(t in STATELESS_TRAINERS for t in types)


def seed_everything(seed: int) -> int:
    """Seed python, numpy and torch; ``-1`` picks a random seed. Returns the seed used."""
    if seed < 0:
        seed = random.SystemRandom().randrange(2**31)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return seed


def _say(console, msg: str) -> None:
    """One line for the user: on the console when there is one, else as a warning."""
    if console is not None:
        console.print(msg, markup=False, highlight=False, soft_wrap=True)
    else:
        import warnings

        warnings.warn(msg, stacklevel=3)


def _saved_spec(spec, states: dict[str, dict]):
    """The :class:`envs.spec.EnvSpec` the checkpoints ``states`` (behavior -> checkpoint dict) were saved with:
    ``spec`` with each saved behavior's slots (its ``behavior_spec``) and the saved state shape."""
    from envs.spec import EnvSpec

    behaviors = tuple(spec_from_dict(states[b.name]["behavior_spec"]) if b.name in states else b for b in spec.behaviors)
    shape = next((tuple(s["state_shape"]) for s in states.values() if s.get("state_shape")), spec.state_shape)
    return EnvSpec(spec.env_id, behaviors, shape, spec.turn_based, spec.state_is_obs)


def _slots_differ(a, b) -> bool:
    """Whether two env specs give some behavior different slots (count or teams)."""
    return any((x.n_agents, tuple(x.teams)) != (b.behavior(x.name).n_agents, tuple(b.behavior(x.name).teams))
               for x in a.behaviors if x.name in b.names)


def _payload(trainer, cfg: RunConfig, spec, behavior: str, step: int, extra: dict) -> dict:
    s = cfg.behavior_settings(behavior)
    return {"format": FORMAT, "behavior": behavior, "trainer_type": s.trainer_type, "step": step,
            "env_id": spec.env_id, "behavior_spec": spec_to_dict(spec.behavior(behavior)),
            "state_shape": list(spec.state_shape), "network_settings": s.network_settings.model_dump(),
            "trainer": trainer.state_dict(behavior), "extra": extra}


class _CurriculumLink:
    """Drives ``environment_parameters`` curricula (ML-Agents' lessons) from training statistics.

    Each finished episode reports its behavior's mean per-agent return (``measure: reward``);
    each rollout reports ``step / max_steps`` (``measure: progress``) and, for a self-play behavior,
    the learning policy's current Elo (``measure: Elo``, as ML-Agents). When a lesson advances the
    new values go to every env copy (Unity's EnvironmentParameters side channel) between
    rollouts, the copies are reset if the lesson says ``require_reset``, and the lesson numbers
    are kept in ``training_status.json`` so ``--resume`` continues from them. TensorBoard:
    ``Environment/Lesson Number/<parameter>``. Lesson logic: :class:`envs.unity.parameters.Curriculum`.
    """

    def __init__(self, cfg: RunConfig, status: TrainingStatus, venv: VecEnv, resume: bool):
        from envs.unity.parameters import Curriculum

        self.cfg, self.status, self.venv = cfg, status, venv
        self.cur = Curriculum(cfg.model_dump(mode="json")["environment_parameters"])
        self.changed = self.reset = False
        saved = status.data.get("metadata", {}).get("lessons", {})
        if resume and saved:
            self.cur.lessons.update({k: int(v) for k, v in saved.items() if k in self.cur.lessons})
            venv.set_environment_parameters(self.cur.values())
            venv.reset()  # the env copies started their first episode at lesson 0: restart them in the saved lesson

    def add_episode(self, stats) -> None:
        for b, r in stats.returns.items():
            r = r[~np.isnan(r)]
            if r.size and self.cur.update(b, float(r.mean()), "reward"):
                self.changed, self.reset = True, self.reset or self.cur.must_reset

    def after_rollout(self, step: int, elo: dict[str, float] | None = None) -> dict[str, dict[str, float]]:
        """Feed progress (and ``elo``: behavior -> current self-play Elo) to the lessons; apply a change."""
        for b in self.cfg.behaviors:
            if self.cur.update(b, step / self.cfg.behavior_settings(b).max_steps, "progress"):
                self.changed, self.reset = True, self.reset or self.cur.must_reset
        for b, value in (elo or {}).items():
            if value is not None and self.cur.update(b, float(value), "Elo"):
                self.changed, self.reset = True, self.reset or self.cur.must_reset
        if self.changed:
            self.venv.set_environment_parameters(self.cur.values())
            if self.reset:
                self.venv.reset()
            self.status.data.setdefault("metadata", {})["lessons"] = self.cur.lesson_numbers()
            self.status.save()
            self.changed = self.reset = False
        lessons = {f"Environment/Lesson Number/{k}": float(v) for k, v in self.cur.lesson_numbers().items()}
        return {b: lessons for b in self.cfg.behaviors} if lessons else {}


def _curriculum(cfg: RunConfig, status: TrainingStatus, venv: VecEnv, resume: bool) -> _CurriculumLink | None:
    params = cfg.environment_parameters or {}
    if not any(hasattr(v, "curriculum") for v in params.values()):
        return None
    return _CurriculumLink(cfg, status, venv, resume)


def check_curricula(cfg: RunConfig) -> None:
    """Refuse, before anything starts, a lesson measured by Elo on a behavior without self-play.

    Raises:
        ConfigError: one line naming the ``completion_criteria.measure`` key.
    """
    for key, p in (cfg.environment_parameters or {}).items():
        for i, lesson in enumerate(getattr(p, "curriculum", None) or []):
            cc = lesson.completion_criteria
            if cc is not None and cc.measure == "Elo" and (cc.behavior not in cfg.behaviors
                                                            or cfg.behavior_settings(cc.behavior).self_play is None):
                raise ConfigError(f"environment_parameters.{key}.curriculum[{i}].completion_criteria.measure: Elo needs "
                                  f"self_play on behavior '{cc.behavior}' (Elo exists only in self-play); use reward "
                                  "or progress")


def _exporter(console=None):
    """The ONNX exporter (``marl.export``) wrapped so that a failed export warns instead of
    stopping training (the ``.pt`` checkpoint is always written first); None when unavailable."""
    try:
        from marl.export import ExportError, export_all_slots
    except ImportError:
        return None

    def export(payload: dict, path) -> list:
        try:
            return export_all_slots(payload, path)
        except ExportError as exc:
            msg = f"[WARNING] ONNX export to {path} skipped: {exc}"
            if console is not None:
                console.print(msg, markup=False, highlight=False, soft_wrap=True)
            else:
                import warnings

                warnings.warn(msg)
            return []

    return export


def train(cfg: RunConfig, run_dir: Path, console=None, progress: bool = True, tensorboard: bool = True,
          between_rollouts: Callable[[int], None] | None = None) -> dict:
    """Train every behavior of the configured env until each reaches its ``max_steps``.

    Args:
        cfg: the resolved run config (CLI flags already applied).
        run_dir: from :func:`prepare_run_dir`.
        console: ``rich.console.Console`` for the summary lines and progress bar (None = silent).
        progress: show a progress bar (only when ``console`` is given).
        tensorboard: write TensorBoard events.
        between_rollouts: called with the env step after every rollout and update; the time it
            takes is left out of ``seconds`` (benchmarks sample the env's raw speed here).

    Agent slots grow between rollouts when a Unity player had more agents of a behavior and team live at
    once than slots (``marl.grow``, ``docs/unity_contract.md`` "Slots that grow"): checkpoint, players
    restarted with ``agent_slots`` raised, trainer rebuilt with widened networks; ``--resume`` starts with
    the slots of the checkpoint.

    Returns:
        ``{"step": final env step, "seconds": wall time (minus ``between_rollouts``), "interrupted": bool,
        "last_100": {behavior: mean per-agent return of the last 100 episodes},
        "history": {behavior: [(step, mean reward since last summary, mean of last 100 episodes), ...]}}``.

    Raises:
        RunError / ConfigError / EnvError / CheckpointError: one-line problems for the user.
    """
    es, ck = cfg.env_settings, cfg.checkpoint_settings
    seed = seed_everything(es.seed)
    device = torch.device(cfg.torch_settings.device or "cpu")
    if device.type == "cpu":
        # Our networks are small (tens of thousands of weights): one intra-op thread is as fast
        # as several and never fights the env workers for cores (profiled: with 2 threads on a
        # busy 2-core machine every op paid milliseconds of OpenMP spin-waiting).
        torch.set_num_threads(1)
    check_curricula(cfg)
    use_ray = es.ray or es.ray_address is not None
    ray_timing = (0.0, 0.0)
    env_id, factory = env_factory(cfg, run_dir)
    if ck.resume and hasattr(factory, "with_agent_slots"):  # slots that grew in the run so far (marl.grow)
        saved = saved_agent_slots(run_dir)
        if saved:
            factory = factory.with_agent_slots(saved)
    probe = factory(0, None)
    spec = probe.spec
    if any(len(shape) == 3 for b in spec.behaviors for shape in b.sensors):  # image observations
        limit_heap_growth()  # an update's image-sized temporaries go back to the OS when freed (marl/heap.py)
    probe.close()
    for b in spec.behaviors:
        cfg.behavior_settings(b.name)  # every env behavior must be configured
    unknown = set(cfg.behaviors) - set(spec.names)
    if unknown:
        raise ConfigError(f"behaviors.{sorted(unknown)[0]}: the env '{env_id}' has no such behavior "
                          f"(it has: {', '.join(spec.names)})")
    n_copies = es.num_envs * (1 if is_executable_path(env_id) else es.num_areas)
    trainer = make_trainer(spec, cfg, n_copies, device)
    status = TrainingStatus(run_dir)
    managers = {b: CheckpointManager(run_dir, b, cfg.behavior_settings(b).keep_checkpoints, status) for b in spec.names}
    step = 0
    if ck.resume:
        states = {b: load_checkpoint(m.latest) for b, m in managers.items()}
        saved_spec = _saved_spec(spec, states)
        widen = _slots_differ(saved_spec, spec)  # the player now shows more agents than the run had slots for
        for b, state in states.items():
            try:
                if widen:
                    grow.load_widened(trainer, b, state["trainer"], saved_spec, spec)
                else:
                    trainer.load_state_dict(b, state["trainer"])
            except grow.GrowError as exc:
                raise CheckpointError(f"--resume: behavior '{b}': {exc}") from None
            step = max(step, int(state["step"]))
            trainer.load_extra(b, state.get("extra", {}))
    elif ck.initialize_from:
        src = Path(ck.results_dir) / ck.initialize_from
        for b in spec.names:
            state = load_checkpoint(src / b / "checkpoint.pt")
            try:
                trainer.load_state_dict(b, state["trainer"], weights_only=True)
            except (RuntimeError, KeyError) as exc:
                raise CheckpointError(f"--initialize-from {ck.initialize_from}: behavior '{b}' does not match the "
                                      f"networks of this run ({str(exc).splitlines()[0]})") from None
    atomic_write_text(run_dir / "configuration.yaml", cfg.resolved_for(spec.names).to_yaml())
    max_steps = max(cfg.behavior_settings(b).max_steps for b in spec.names)
    interval = {b: cfg.behavior_settings(b).checkpoint_interval for b in spec.names}
    next_ckpt = {b: (step // interval[b] + 1) * interval[b] for b in spec.names}
    reporter = StatsReporter(run_dir, {b: cfg.behavior_settings(b).summary_freq for b in spec.names},
                             tensorboard=tensorboard, console=console, start_step=step)
    exporter = _exporter(console)
    t_env = t_update = 0.0
    t0 = time.time()
    # a Unity player holds its own training areas (--num-areas goes to the player), so one copy per worker
    areas = 1 if is_executable_path(env_id) else es.num_areas
    interrupted = False
    lost: Exception | None = None
    runners = venv = curriculum = None
    if use_ray:  # env runners as Ray actors (marl/ray_runners.py); the learner stays here
        from marl.ray_runners import RayRunners

        runners = RayRunners(cfg, spec, factory, es.num_envs, areas, seed, trainer=trainer)
        try:  # the runners take the lessons' values with each collect, as a local VecEnv takes them
            curriculum = _curriculum(cfg, status, runners, resume=ck.resume)
        except BaseException:
            runners.close()
            raise
    else:
        venv = VecEnv(factory, spec, es.num_envs, areas, seed=seed)
        try:
            curriculum = _curriculum(cfg, status, venv, resume=ck.resume)
        except BaseException:
            venv.close()
            raise

    def extra(b: str) -> dict:
        return trainer.extra_state(b)

    needed: dict[str, dict[int, int]] = {}  # behavior -> team -> most agents live at once, when beyond the slots
    refused: list[str] = []  # why the slots cannot grow (said once)

    def grow_slots() -> None:
        """Between rollouts: when some env copy had more agents of a behavior and team live at once than it has
        slots, save, close the env workers, probe a player with ``agent_slots`` raised, build the trainer of
        the new spec from the old one's state (networks widened, ``marl.grow``), restart the workers, save."""
        nonlocal trainer, spec, factory, venv
        short = grow.shortfall(spec, needed)
        needed.clear()
        if not short:
            return
        why = grow.refusal(trainer, cfg) or (None if hasattr(factory, "with_agent_slots") else
                                             f"the slots of env '{env_id}' are its possible_agents (only a Unity "
                                             "build's slots grow)")
        if why:
            if not refused:
                refused.append(why)
                _say(console, f"[WARNING] Agent slots cannot grow: {why}; the extra agents are not trained.")
            return
        before = {b: max(grow.team_slots(spec.behavior(b)).values()) for b in short}
        save(snapshot=False)  # a resumable state from before the change, whatever happens next
        if venv is not None:
            venv.close()
        if runners is not None:
            runners.pause()  # their players' ports are free for the probe
        # every behavior keeps at least the slots it has (the probe's discovery may see fewer agents of some)
        keep = {b.name: max(grow.team_slots(b).values()) for b in spec.behaviors}
        new_factory = factory.with_agent_slots({**keep, **short})
        probe = new_factory(0, None)
        new_spec = probe.spec
        probe.close()
        new_trainer = make_trainer(new_spec, cfg, n_copies, device)
        try:
            grow.transfer(trainer, new_trainer, spec, new_spec)
        except grow.GrowError as exc:
            raise RunError(f"agent slots could not grow at step {step} ({exc}); the run was saved just before: "
                           "resume it with --resume, with env_settings.env_kwargs.agent_slots raised") from None
        trainer, spec, factory = new_trainer, new_spec, new_factory
        if runners is not None:
            runners.restart(spec, factory, trainer)
            envs = runners
        else:
            venv = envs = VecEnv(factory, spec, es.num_envs, areas, seed=seed + step)
        if curriculum is not None:  # the new players start at the current lesson
            curriculum.venv = envs
            envs.set_environment_parameters(curriculum.cur.values())
        save(snapshot=False)  # the checkpoint now records the grown slots (--resume starts with them)
        grown = ", ".join(f"{b} {before[b]} -> {max(grow.team_slots(spec.behavior(b)).values())}" for b in short)
        _say(console, f"[INFO] Agent slots grew at step {step}: {grown} per team (more agents were live at once than "
                      "slots); env workers restarted, networks widened, training goes on.")

    def save(snapshot: bool, final: bool = False) -> None:
        for b, m in managers.items():
            payload = _payload(trainer, cfg, spec, b, step, extra(b))
            if "elo" in payload["extra"]:  # self-play (marl/selfplay.py): ML-Agents keeps the Elo here
                status.behavior(b)["elo"] = payload["extra"]["elo"]
            r = reporter.last_100_mean(b)
            r = None if np.isnan(r) else r
            if final:
                m.finalize(payload, step, r, exporter)
            else:
                m.save(payload, step, r, snapshot=snapshot, exporter=exporter if snapshot else None)

    bar = None
    if console is not None and progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("env steps"), TimeRemainingColumn(), console=console, transient=True)
    try:
        with bar or nullcontext():
            task = bar.add_task(ck.run_id, total=max_steps, completed=step) if bar else None
            while step < max_steps:
                if runners is not None:
                    n, batch, t_wait, episodes = runners.collect(trainer.weights(), step, trainer.merge)
                    for ep in episodes:
                        grow.note_needed(needed, ep)
                        reporter.add_episode(ep)
                        if curriculum is not None:
                            curriculum.add_episode(ep)
                    t_learn = time.perf_counter()
                    logs = trainer.learn(step, n, batch)
                    ray_timing = (ray_timing[0] + t_wait, ray_timing[1] + time.perf_counter() - t_learn)
                else:
                    n, logs = trainer.collect_and_train(venv, step, on_episode=lambda e, s: (
                        grow.note_needed(needed, s), reporter.add_episode(s),
                        curriculum.add_episode(s) if curriculum else None))
                step += n
                release_free_memory()
                if curriculum is not None:
                    elo = {b: trainer.extra_state(b).get("elo") for b in spec.names
                           if cfg.behavior_settings(b).self_play is not None}
                    for b, scalars in curriculum.after_rollout(step, elo).items():
                        reporter.add_scalars(b, scalars)
                for b, scalars in logs.items():
                    reporter.add_scalars(b, scalars)
                t_env, t_update = trainer.timing if runners is None else ray_timing
                reporter.maybe_summarize(step)
                if any(step >= next_ckpt[b] for b in spec.names) and step < max_steps:
                    save(snapshot=True)
                    for b in spec.names:
                        next_ckpt[b] = (step // interval[b] + 1) * interval[b]
                if bar:
                    bar.update(task, completed=min(step, max_steps))
                if between_rollouts is not None:
                    t_hook = time.time()
                    between_rollouts(step)
                    t0 += time.time() - t_hook
                if needed and step < max_steps:  # more agents than slots: grow them now (marl.grow)
                    grow_slots()
    except KeyboardInterrupt:
        interrupted = True
    except Exception as exc:  # every Ray env runner lost: stop with a resumable checkpoint
        from marl.ray_runners import RunnersLost

        if not isinstance(exc, RunnersLost):
            raise
        lost, interrupted = exc, True
    finally:
        if venv is not None:
            venv.close()
        if runners is not None:
            runners.close()
    if lost is not None:
        save(snapshot=True)
        raise RunError(f"{lost} (checkpoint saved at step {step})")
    if interrupted:
        save(snapshot=True)
        if console is not None:
            console.print(f"[INFO] Training interrupted at step {step}. Saved checkpoint to {run_dir}. "
                          "Continue with --resume.", markup=False, highlight=False, soft_wrap=True)
    else:
        save(snapshot=True, final=True)
    reporter.close()
    seconds = time.time() - t0
    atomic_write_json(run_dir / "run_logs" / "timers.json",
                      {"name": "root", "total": seconds, "count": 1,
                       "children": {"env_step": {"total": t_env, "count": 1}, "trainer_update": {"total": t_update, "count": 1}},
                       "metadata": {"end_step": step, "seed": seed, "cpu_count": cpu_count()}})
    if console is not None and not interrupted:
        files = ", ".join(str(run_dir / f"{b}.onnx") if exporter else str(run_dir / b / "checkpoint.pt") for b in spec.names)
        console.print(f"[INFO] Training finished at step {step} in {seconds:.1f} s. Results in {run_dir} ({files}).",
                      markup=False, highlight=False, soft_wrap=True)
    return {"step": step, "seconds": seconds, "interrupted": interrupted, "seed": seed,
            "last_100": {b: reporter.last_100_mean(b) for b in spec.names},
            "history": {b: list(h) for b, h in reporter.history.items()}}
