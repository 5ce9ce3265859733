"""Engine settings and ``environment_parameters`` for Unity players, and curriculum bookkeeping.

* :func:`apply_engine` queues ``engine_settings`` on mlagents' ``EngineConfigurationChannel``.
* :func:`apply_parameters` queues values on the ``EnvironmentParametersChannel``: a float (or a
  ``constant`` sampler) as a float, ``uniform`` / ``gaussian`` / ``multirangeuniform`` samplers as
  sampler messages (the player samples, usually at each episode start).
* :class:`Curriculum` follows lessons by their ``completion_criteria`` (ML-Agents'
  ``EnvironmentParameterManager`` / ``CompletionCriteriaSettings.need_increment``, Release 19).

Inputs are the YAML forms as plain dicts (pydantic models are accepted through ``model_dump()``),
so this module does not depend on ``marl``.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Any

from mlagents_envs.side_channel.engine_configuration_channel import EngineConfigurationChannel
from mlagents_envs.side_channel.environment_parameters_channel import EnvironmentParametersChannel

from envs.unity.errors import UnityEnvError

ENGINE_KEYS = ("width", "height", "quality_level", "time_scale", "target_frame_rate", "capture_frame_rate")


def _plain(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value


def apply_engine(channel: EngineConfigurationChannel, engine: dict | None) -> None:
    """Queue ``engine_settings`` (keys of :data:`ENGINE_KEYS`; ``no_graphics*`` are process flags
    and are skipped). Missing keys are not sent (the player keeps its own).

    Raises:
        UnityEnvError: an unknown key.
    """
    engine = dict(_plain(engine) or {})
    for key in ("no_graphics", "no_graphics_monitor"):
        engine.pop(key, None)
    unknown = set(engine) - set(ENGINE_KEYS)
    if unknown:
        raise UnityEnvError(f"engine_settings: unknown key(s) {sorted(unknown)}; expected {list(ENGINE_KEYS)}")
    if ("width" in engine) != ("height" in engine):
        raise UnityEnvError("engine_settings: width and height must be given together")
    kw = {k: engine[k] for k in ENGINE_KEYS if engine.get(k) is not None}
    for k in ("width", "height", "quality_level", "target_frame_rate", "capture_frame_rate"):
        if k in kw:
            kw[k] = int(kw[k])
    if "time_scale" in kw:
        kw["time_scale"] = float(kw["time_scale"])
    channel.set_configuration_parameters(**kw)


def parse_value(key: str, value: Any) -> tuple[str, tuple[float, ...]]:
    """An ``environment_parameters`` value (a float or a sampler dict) as ``(kind, numbers)``: ``("constant",
    (v,))``, ``("uniform", (min, max))``, ``("gaussian", (mean, st_dev))`` or ``("multirangeuniform",
    (lo0, hi0, lo1, hi1, ...))`` (Unity's ``SamplerFactory`` kinds).

    Raises:
        UnityEnvError: neither a float nor a known, complete sampler (one line naming ``key``).
    """
    value = _plain(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "constant", (float(value),)
    if not isinstance(value, dict) or "sampler_type" not in value:
        raise UnityEnvError(f"environment_parameters.{key}: expected a float, a sampler "
                            f"{{sampler_type, sampler_parameters}} or a curriculum, got {value!r}")
    kind, p = value["sampler_type"], value.get("sampler_parameters") or {}
    fields = {"constant": ("value",), "uniform": ("min_value", "max_value"), "gaussian": ("mean", "st_dev")}
    try:
        if kind in fields:
            return kind, tuple(float(p[f]) for f in fields[kind])
        if kind == "multirangeuniform":
            ivs = [tuple(float(x) for x in iv) for iv in p["intervals"]]
            if not ivs or any(len(iv) != 2 or not iv[0] < iv[1] for iv in ivs):
                raise UnityEnvError(f"environment_parameters.{key}: multirangeuniform intervals must be [min, max] "
                                    f"pairs with min < max, got {p['intervals']!r}")
            return kind, tuple(x for iv in ivs for x in iv)
    except KeyError as exc:
        raise UnityEnvError(f"environment_parameters.{key}: {kind} sampler needs sampler_parameters.{exc.args[0]}") from None
    raise UnityEnvError(f"environment_parameters.{key}: unknown sampler_type '{kind}' "
                        "(expected uniform, gaussian, multirangeuniform or constant)")


def _send_value(channel: EnvironmentParametersChannel, key: str, value: Any, seed: int) -> None:
    kind, v = parse_value(key, value)
    if kind == "constant":
        channel.set_float_parameter(key, v[0])
    elif kind == "uniform":
        channel.set_uniform_sampler_parameters(key, v[0], v[1], seed)
    elif kind == "gaussian":
        channel.set_gaussian_sampler_parameters(key, v[0], v[1], seed)
    else:
        channel.set_multirangeuniform_sampler_parameters(key, list(zip(v[0::2], v[1::2])), seed)


def current_values(environment_parameters: dict | None, lessons: dict[str, int] | None = None) -> dict[str, Any]:
    """``key -> float or sampler dict`` to send now: curricula give their current lesson's value
    (``lessons[key]``, default lesson 0)."""
    out = {}
    for key, value in (_plain(environment_parameters) or {}).items():
        value = _plain(value)
        if isinstance(value, dict) and "curriculum" in value:
            lesson = (lessons or {}).get(key, 0)
            out[key] = _plain(value["curriculum"][lesson])["value"]
        else:
            out[key] = value
    return out


def draw_value(key: str, value: Any, rng) -> float:
    """One draw of an ``environment_parameters`` value (:func:`parse_value`), as Unity's samplers draw at each
    episode start; for in-process games that read parameters (``envs/games/soccer.py``). ``rng``: a
    ``numpy`` Generator.

    Raises:
        UnityEnvError (a ``ValueError``): a value that is neither a float nor a known sampler, naming ``key``.
    """
    kind, v = parse_value(key, value)
    if kind == "constant":
        return v[0]
    if kind == "uniform":
        return float(rng.uniform(v[0], v[1]))
    if kind == "gaussian":
        return float(rng.normal(v[0], v[1]))
    lo, hi = v[0::2], v[1::2]
    widths = [h - l for l, h in zip(lo, hi)]
    i = int(rng.choice(len(lo), p=[w / sum(widths) for w in widths]))
    return float(rng.uniform(lo[i], hi[i]))


def apply_parameters(channel: EnvironmentParametersChannel, values: dict[str, Any], seed: int = 0) -> None:
    """Queue ``key -> float | sampler dict`` (as :func:`current_values` returns) on the channel.

    Args:
        seed: sampler seed sent to the player (ML-Agents sends the run seed; callers add the
            worker id so that workers draw different sequences).

    Raises:
        UnityEnvError: a value that is neither a float nor a known sampler.
    """
    for key, value in values.items():
        _send_value(channel, key, value, seed)


class Curriculum:
    """Lesson state of every curriculum in ``environment_parameters``.

    Semantics (ML-Agents ``CompletionCriteriaSettings.need_increment``): for ``measure: reward``
    the caller reports each finished episode's cumulative reward of ``behavior``; once at least
    ``min_lesson_length`` of them are buffered, their mean (smoothed as ``0.25 * previous + 0.75 *
    mean`` when ``signal_smoothing``) must exceed ``threshold``. For ``measure: progress`` the caller
    reports ``steps / max_steps`` of that behavior. A lesson change clears that behavior's buffer.
    The last lesson never completes.

    Usage by the trainer::

        cur = Curriculum(cfg.environment_parameters)
        ... after each episode of behavior B with return R:
        if cur.update("B", R):                      # lesson changed
            for env in envs: env.set_environment_parameters(cur.values())
            if cur.must_reset: reset the envs
        ... and each summary: cur.update("B", step / max_steps, measure="progress")

    Args:
        environment_parameters: the YAML mapping (floats, samplers, curricula).

    Raises:
        UnityEnvError: a curriculum without lessons.
    """

    def __init__(self, environment_parameters: dict | None):
        self.parameters = {k: _plain(v) for k, v in (_plain(environment_parameters) or {}).items()}
        self.lessons: dict[str, int] = {}
        self._buffers: dict[str, deque] = {}
        self._smoothing: dict[str, float] = {}
        self.must_reset = False
        for key, value in self.parameters.items():
            if isinstance(value, dict) and "curriculum" in value:
                lessons = [_plain(x) for x in value["curriculum"]]
                if not lessons:
                    raise UnityEnvError(f"environment_parameters.{key}.curriculum: needs at least one lesson")
                value["curriculum"] = lessons
                self.lessons[key] = 0
                for lesson in lessons[:-1]:
                    cc = _plain(lesson.get("completion_criteria")) or {}
                    if not cc.get("behavior"):
                        raise UnityEnvError(f"environment_parameters.{key}: lesson '{lesson.get('name')}' needs "
                                            "completion_criteria.behavior (every lesson but the last)")
                    n = max(1, int(cc.get("min_lesson_length", 0)))
                    old = self._buffers.get(cc["behavior"])
                    if old is None or (old.maxlen or 0) < n:
                        self._buffers[cc["behavior"]] = deque(maxlen=n)

    def values(self) -> dict[str, Any]:
        """Current value (float or sampler dict) of every parameter."""
        return current_values(self.parameters, self.lessons)

    def lesson_numbers(self) -> dict[str, int]:
        """Current lesson index per curriculum (TensorBoard: ``Environment/Lesson Number/<key>``)."""
        return dict(self.lessons)

    def update(self, behavior: str, measure_value: float, measure: str = "reward") -> bool:
        """Report one measurement for ``behavior``; returns True when some lesson advanced.

        Args:
            behavior: behavior name (as in ``completion_criteria.behavior``).
            measure_value: an episode's cumulative reward (``measure="reward"``), the training
                progress in [0, 1] (``measure="progress"``) or the self-play Elo (``measure="Elo"``).
            measure: ``"reward"``, ``"progress"`` or ``"Elo"`` (the last two are compared as they come).
        """
        self.must_reset = False
        if measure == "reward" and behavior in self._buffers:
            self._buffers[behavior].append(float(measure_value))
        changed = False
        for key, lesson in list(self.lessons.items()):
            lessons = self.parameters[key]["curriculum"]
            if lesson >= len(lessons) - 1:
                continue
            cc = _plain(lessons[lesson].get("completion_criteria")) or {}
            if cc.get("behavior") != behavior or cc.get("measure", "reward") != measure:
                continue
            buf = self._buffers[behavior]
            if len(buf) < max(1, int(cc.get("min_lesson_length", 0))) and measure == "reward":
                continue
            if measure in ("progress", "Elo"):
                value = float(measure_value)
            else:
                value = float(sum(buf) / len(buf))
                if math.isnan(value):
                    continue
                if cc.get("signal_smoothing", True):
                    value = 0.25 * self._smoothing.get(key, 0.0) + 0.75 * value
                    self._smoothing[key] = value
            if value > float(cc.get("threshold", 0.0)):
                self.lessons[key] = lesson + 1
                self.must_reset |= bool(cc.get("require_reset", False))
                changed = True
        if changed and behavior in self._buffers:
            self._buffers[behavior].clear()
        return changed
