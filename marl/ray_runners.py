"""Env runners as Ray actors: ``marl-learn ... --ray [--ray-address auto|HOST:PORT]``.

Shape (RLlib's ``EnvRunner``/``Learner`` split, Sample Factory's rollout workers): the learner stays
in the driver on ``--torch-device``; each of the ``--num-envs`` runners is a Ray actor holding
``--num-areas`` env copies (or one Unity player, ports ``--base-port + runner index``) and a copy of
the run's trainer (:mod:`marl.algos.registry`) on the CPU. Once per rollout the driver puts the
acting weights in the object store once (``Trainer.weights``); every runner loads them, collects
``buffer_size / num_envs`` experiences with the algorithm's own collector (``Trainer.collect``) and
returns a numpy fragment; the driver merges the fragments (``Trainer.merge``) and updates
(``Trainer.learn``). The algorithm, YAML, results layout, TensorBoard tags, checkpoints and
``--resume`` are those of a local run (one learner code path).

Faults: runners are created with ``max_restarts`` (``--max-lifetime-restarts``); a runner that dies
mid-rollout (node lost, Unity player crashed past its restarts) loses its fragment, Ray replaces it,
training goes on with the other fragments and a warning line; losing every runner of a rollout
stops the run with one line (the run loop saves a resumable checkpoint first).

Not served on Ray (refused in one line): self-play (opponent swaps happen inside a rollout) and
``environment_parameters`` curricula.
"""
from __future__ import annotations

import functools
import math
import time
import warnings
from typing import Callable

RUNNER_TIMEOUT_S = 900.0  # one rollout of one runner; a longer one is treated as lost


class RunnersLost(RuntimeError):
    """Every env runner of a rollout was lost (past Ray's restarts); the run stops with a checkpoint."""


def _offset_factory(factory: Callable, offset: int, index: int, out):
    """Copy ``index`` of runner ``r`` is global copy ``r * areas + index`` (seeds, Unity worker ports)."""
    return factory(offset + index, out)


def runner_config(cfg_data: dict, n_runners: int) -> dict:
    """The run config each runner collects with: ``buffer_size`` split over the runners (rounded up),
    ``batch_size`` capped to it (runners never update)."""
    import copy

    data = copy.deepcopy(cfg_data)
    for b in list((data.get("behaviors") or {}).values()) + ([data["default_settings"]] if data.get("default_settings") else []):
        hp = b.get("hyperparameters") or {}
        if "buffer_size" in hp and b.get("trainer_type") in ("mappo", "ippo", "poca"):
            hp["buffer_size"] = max(1, math.ceil(int(hp["buffer_size"]) / n_runners))
            hp["batch_size"] = min(int(hp.get("batch_size", hp["buffer_size"])), hp["buffer_size"])
    data.pop("league", None)
    return data


def _runner_class():
    import ray

    @ray.remote(num_cpus=1)
    class EnvRunner:
        """One env runner: env copies plus a CPU copy of the trainer that only collects."""

        def __init__(self, cfg_data: dict, spec, factory, index: int, areas: int, seed: int | None):
            import torch

            from envs.vector import VecEnv
            from marl.algos.factory import trainer_class
            from marl.config import parse_config

            torch.set_num_threads(1)
            cfg = parse_config(cfg_data, "<env runner>")
            types = {cfg.behavior_settings(b.name).trainer_type for b in spec.behaviors}
            self.trainer = trainer_class(next(iter(types)))(spec, cfg, areas, torch.device("cpu"))
            offset = index * areas
            self.venv = VecEnv(functools.partial(_offset_factory, factory, offset), spec, 1, areas,
                               seed=None if seed is None else seed + offset)

        def collect(self, weights: dict, step: int):
            stats = []
            self.trainer.load_weights(weights)
            steps, batch, t_env = self.trainer.collect(self.venv, step, on_episode=lambda e, s: stats.append(s))
            return steps, self.trainer.compact(batch), t_env, stats

        def close(self) -> None:
            self.venv.close()

    return EnvRunner


class RayRunners:
    """``n`` env runners on Ray (see the module docstring).

    Args:
        cfg: the run config (``env_settings.ray_address``, ``max_lifetime_restarts``).
        spec: the env's spec.
        factory: the picklable env factory (``marl.run.env_factory``).
        n: runners (``--num-envs``); areas: env copies per runner; seed: copy ``i`` resets with ``seed + i``.

    Raises:
        ConfigError: Ray cannot start or the address cannot be reached (one line).
    """

    def __init__(self, cfg, spec, factory, n: int, areas: int, seed: int | None):
        import ray

        from marl.raytools import start_or_connect

        self.n, self.areas = n, areas
        self.max_restarts = max(0, int(cfg.env_settings.max_lifetime_restarts))
        self.replaced = 0
        from marl.config import ConfigError
        from marl.raytools import RayError, project_runtime_env

        try:
            self._owns_ray = start_or_connect(cfg.env_settings.ray_address, runtime_env=project_runtime_env())
        except RayError as exc:
            raise ConfigError(f"env_settings.ray_address: {exc}") from None
        cls = _runner_class()
        data = runner_config(cfg.model_dump(mode="json"), n)
        self.runners = [cls.options(name=f"env-runner-{i}", max_restarts=self.max_restarts, max_task_retries=0)
                        .remote(data, spec, factory, i, areas, seed) for i in range(n)]
        self._ray = ray

    def collect(self, weights: dict, step: int, merge: Callable[[list], object]):
        """One rollout from every runner: ``(env steps, merged batch, seconds waiting, [EpisodeStats])``.

        Raises:
            RunnersLost: no runner returned a fragment.
        """
        ray = self._ray
        ref = ray.put(weights)
        t0 = time.perf_counter()
        futures = [r.collect.remote(ref, step) for r in self.runners]
        deadline = time.monotonic() + RUNNER_TIMEOUT_S
        results, lost = [], 0
        unavailable = getattr(ray.exceptions, "ActorUnavailableError", ())
        for i, (runner, f) in enumerate(zip(self.runners, futures)):
            warned = False
            while True:
                try:
                    results.append(ray.get(f, timeout=max(1.0, deadline - time.monotonic())))
                    break
                except unavailable as exc:  # died and restarting: its fragment is gone; collect again from the new one
                    if not warned:
                        warned = True
                        self.replaced += 1
                        warnings.warn(f"env runner {i} lost mid-rollout ({type(exc).__name__}); its fragment is dropped "
                                      f"and Ray replaces it ({self.replaced} replacement(s) so far, at most "
                                      f"{self.max_restarts} per runner)", stacklevel=2)
                    if time.monotonic() > deadline:
                        lost += 1
                        break
                    time.sleep(0.5)
                    f = runner.collect.remote(ref, step)
                except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError, ray.exceptions.RayTaskError) as exc:
                    lost += 1
                    self.replaced += 1
                    warnings.warn(f"env runner {i} lost mid-rollout ({type(exc).__name__}); its fragment is dropped and Ray "
                                  f"replaces it ({self.replaced} replacement(s) so far, at most "
                                  f"{self.max_restarts} per runner)", stacklevel=2)
                    break
        if not results:
            raise RunnersLost(f"every env runner was lost in this rollout ({lost} of {self.n}); the run stops with a "
                              "checkpoint: check the players' logs in results/<run-id>/run_logs/, then --resume")
        steps = sum(r[0] for r in results)
        batch = merge([r[1] for r in results])
        stats = [s for r in results for s in r[3]]
        return steps, batch, time.perf_counter() - t0, stats

    def close(self) -> None:
        """Close the runners' envs (Unity players) and tear down a Ray instance this run started."""
        ray = self._ray
        try:
            ray.get([r.close.remote() for r in self.runners], timeout=30)
        except Exception:  # noqa: BLE001 - a dead runner has nothing left to close
            pass
        for r in self.runners:
            try:
                ray.kill(r)
            except Exception:  # noqa: BLE001
                pass
        self.runners = []
        if self._owns_ray:
            from marl.raytools import shutdown

            shutdown()


def check_ray_config(cfg) -> None:
    """Refuse what the Ray runners cannot serve, in one line.

    Raises:
        ConfigError: self-play or curricula with ``--ray``.
    """
    from marl.config import ConfigError

    for name, b in cfg.behaviors.items():
        if b.self_play is not None:
            raise ConfigError(f"behaviors.{name}.self_play: self-play does not run on Ray env runners yet (opponent "
                              "swaps happen inside a rollout); train it without --ray")
    if any(hasattr(v, "curriculum") for v in (cfg.environment_parameters or {}).values()):
        raise ConfigError("environment_parameters: curricula do not run on Ray env runners yet; train without --ray")
