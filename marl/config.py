"""The ``mlagents-learn`` YAML schema, validated with pydantic.

Top level (as ML-Agents): ``behaviors``, ``default_settings``, ``env_settings``,
``engine_settings``, ``checkpoint_settings``, ``torch_settings``, ``environment_parameters``,
``debug``. ``default_settings`` is deep-merged under every behavior (and used for behaviors the
env has but the YAML does not list). Unknown keys, wrong types and impossible values raise
:class:`ConfigError` with one line: ``<file>: <key.path>: <what was expected>``.

Differences from ML-Agents (documented in the README):

* ``trainer_type``: ``mappo``, ``ippo``, ``qmix``, ``vdn``; ``ppo`` is accepted as ``ippo`` and
  ``poca`` (ML-Agents' centralised-critic trainer) as ``mappo``.
* ``max_steps``, ``summary_freq``, ``checkpoint_interval`` count *env steps* (one joint step of
  one env copy), the usual MARL unit; ML-Agents counts each agent's decisions.
* ``buffer_size`` / ``batch_size`` count experiences (one agent's decision), as ML-Agents.

Every ML-Agents key either works, or is accepted only at the value that matches what we do (so the
``configuration.yaml`` ML-Agents writes loads unchanged: ``threaded: false``, ``init_path: null``,
``memory: null``, ...), or is refused with one line naming the key and why (``threaded: true``,
an odd ``memory_size``, ``reward_signals.curiosity``, ``behavioral_cloning``, ``self_play`` on a
trainer without self-play ...). ``network_settings.goal_conditioning_type`` takes ML-Agents' values
and has no effect (no env of ours has goal observations).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, ValidationInfo, field_validator,
                      model_validator)


class ConfigError(ValueError):
    """A bad config file or flag; ``str(err)`` is the one line to show the user."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ------------------------------------------------------------------------- per-trainer settings
class PPOHyperparameters(_Strict):
    """MAPPO / IPPO hyperparameters (ML-Agents' PPO keys plus MAPPO's, Yu et al. 2022).

    Units: ``buffer_size`` and ``batch_size`` are experiences (agent decisions) per behavior.
    """

    batch_size: int = Field(1024, gt=0)
    buffer_size: int = Field(10240, gt=0)
    learning_rate: float = Field(3e-4, gt=0)
    critic_learning_rate: float | None = Field(None, gt=0, description="defaults to learning_rate")
    beta: float = Field(5e-3, ge=0, description="entropy bonus coefficient")
    epsilon: float = Field(0.2, gt=0, description="PPO clip range (also the value clip)")
    lambd: float = Field(0.95, ge=0, le=1, description="GAE lambda")
    num_epoch: int = Field(3, gt=0)
    learning_rate_schedule: Literal["linear", "constant"] = "linear"
    beta_schedule: Literal["linear", "constant"] | None = None
    epsilon_schedule: Literal["linear", "constant"] | None = None
    shared_critic: bool = Field(False, description="ML-Agents: actor and critic share one network body; only "
                                "false (our actor and critic are separate networks)")
    # MAPPO additions (official repo marlbenchmark/on-policy defaults)
    max_grad_norm: float = Field(10.0, gt=0)
    value_loss_coef: float = Field(1.0, ge=0)
    use_value_norm: bool = True
    use_huber_loss: bool = True
    huber_delta: float = Field(10.0, gt=0)
    use_clipped_value_loss: bool = True
    adam_eps: float = Field(1e-5, gt=0)

    @field_validator("shared_critic")
    @classmethod
    def _no_shared_body(cls, v: bool) -> bool:
        if v:
            raise ValueError("true (one network body for actor and critic) is not supported: our actor and critic "
                             "are separate networks; remove the key or set it to false")
        return v

    @model_validator(mode="after")
    def _batch_fits(self) -> "PPOHyperparameters":
        if self.batch_size > self.buffer_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be <= buffer_size ({self.buffer_size})")
        return self


class POCAHyperparameters(_Strict):
    """MA-POCA hyperparameters: ML-Agents' ``POCASettings`` keys and defaults (its PPO keys) plus ours.

    Units: ``buffer_size`` and ``batch_size`` are experiences (agent decisions) per behavior.
    ``group_reward``: for envs without a separate group reward (PettingZoo), the reward each group
    member is credited with at a step is the ``sum`` (ML-Agents' own + groupmates' rewards) or ``mean``
    of the rewards the group's members received in that step.
    """

    batch_size: int = Field(1024, gt=0)
    buffer_size: int = Field(10240, gt=0)
    learning_rate: float = Field(3e-4, gt=0)
    beta: float = Field(5e-3, ge=0, description="entropy bonus coefficient")
    epsilon: float = Field(0.2, gt=0, description="PPO clip range (also the value and baseline clip)")
    lambd: float = Field(0.95, ge=0, le=1, description="lambda of the lambda-returns")
    num_epoch: int = Field(3, gt=0)
    learning_rate_schedule: Literal["linear", "constant"] = "linear"
    beta_schedule: Literal["linear", "constant"] | None = None
    epsilon_schedule: Literal["linear", "constant"] | None = None
    shared_critic: bool = Field(False, description="ML-Agents' key; only false")
    group_reward: Literal["sum", "mean"] = "sum"
    max_grad_norm: float | None = Field(None, gt=0, description="gradient-norm clipping (ML-Agents: none)")

    @field_validator("shared_critic")
    @classmethod
    def _no_shared_body(cls, v: bool) -> bool:
        if v:
            raise ValueError("true is not supported: MA-POCA's critic is its own network; remove the key or set it to false")
        return v

    @model_validator(mode="after")
    def _batch_fits(self) -> "POCAHyperparameters":
        if self.batch_size > self.buffer_size:
            raise ValueError(f"batch_size ({self.batch_size}) must be <= buffer_size ({self.buffer_size})")
        return self


class QMIXHyperparameters(_Strict):
    """QMIX / VDN hyperparameters (Rashid et al. 2018; Sunehag et al. 2018). Defaults are pymarl's
    (oxwhirl/pymarl ``qmix.yaml``) with the pymarl2 fine-tuning (hijkzzz/pymarl2: Adam, lr 1e-3).

    Units: ``buffer_size`` and ``batch_size`` are *episodes* (whole, padded episodes; an episode
    longer than ``max_episode_length`` is stored as several segments); ``epsilon_anneal_steps`` is
    env steps (summed over env copies); ``target_update_interval`` is gradient updates;
    ``update_interval`` is finished episodes per gradient update (pymarl: one update per
    ``batch_size_run`` episodes).
    """

    buffer_size: int = Field(5000, gt=0, description="replay capacity in episodes")
    batch_size: int = Field(32, gt=0, description="episodes per gradient update")
    learning_rate: float = Field(1e-3, gt=0)
    optimizer: Literal["adam", "rmsprop"] = "adam"
    gamma: float | None = Field(None, ge=0, le=1, description="defaults to reward_signals.extrinsic.gamma")
    target_update_interval: int = Field(200, gt=0, description="hard target-network copy every N updates")
    target_update_tau: float | None = Field(None, gt=0, le=1, description="soft (Polyak) update instead of hard")
    epsilon_start: float = Field(1.0, ge=0, le=1)
    epsilon_finish: float = Field(0.05, ge=0, le=1)
    epsilon_anneal_steps: int = Field(50000, ge=0, description="env steps of linear annealing")
    double_q: bool = True
    td_lambda: float = Field(0.0, ge=0, le=1, description="0 = one-step targets; pymarl2 uses 0.6")
    mixing_embed_dim: int = Field(32, gt=0)
    hypernet_embed: int = Field(64, gt=0)
    hypernet_layers: int = Field(2, ge=1, le=2)
    rnn_hidden_dim: int = Field(64, gt=0)
    max_grad_norm: float = Field(10.0, gt=0)
    obs_last_action: bool = True
    obs_agent_id: bool = True
    update_interval: int = Field(1, gt=0, description="finished episodes per gradient update")
    team_reward: Literal["mean", "sum"] = "mean"
    standardise_rewards: bool = Field(False, description="divide rewards by a running std after removing the "
                                      "running mean (epymarl's standardise_rewards)")
    max_episode_length: int | None = Field(None, gt=0, description="None = store whole episodes of any length")
    save_replay_buffer: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> "QMIXHyperparameters":
        if self.batch_size > self.buffer_size:
            raise ValueError(f"batch_size ({self.batch_size} episodes) must be <= buffer_size ({self.buffer_size} episodes)")
        if self.epsilon_finish > self.epsilon_start:
            raise ValueError(f"epsilon_finish ({self.epsilon_finish}) must be <= epsilon_start ({self.epsilon_start})")
        return self


def _registry():
    """The algorithm registry (:mod:`marl.algos.registry`): trainer types, their hyperparameter models,
    aliases and self-play support all come from its entries (imported lazily: it names this module)."""
    from marl.algos import registry

    return registry


class MemorySettings(_Strict):
    """ML-Agents' ``network_settings.memory``: an LSTM after the observation encoder.

    ``memory_size`` is the size of the memory tensor ``concat(h, c)`` (so the LSTM has
    ``memory_size / 2`` units, as ML-Agents' ``LSTM``); ``sequence_length`` is the length of the
    training sequences in agent decisions (rMAPPO's ``data_chunk_length``).
    """

    sequence_length: int = Field(64, gt=0)
    memory_size: int = Field(128, gt=0)

    @field_validator("memory_size")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"memory_size must be even (the memory holds the LSTM's h and c halves), got {v}")
        return v


class NetworkSettings(_Strict):
    """Network shape. ``normalize``: running mean/std observation normalisation (ML-Agents);
    ``layer_norm``: LayerNorm on the inputs (MAPPO's ``use_feature_normalization``).

    ``agent_id``: whether a shared policy takes its agent's one-hot slot id (MAPPO's parameter sharing
    with ids); null = on, except for Unity behaviors (ML-Agents' agents of a behavior are
    interchangeable and a Unity agent can feed only its sensors, so an exported brain has no id
    input). ``memory``: an LSTM policy and critic (:class:`MemorySettings`; MAPPO/IPPO; QMIX/VDN's agent
    network is recurrent already and refuses it), ``deterministic`` false (training samples
    actions; evaluation and the exported ONNX act greedily); ``goal_conditioning_type`` takes
    ML-Agents' values and has no effect (no goal observations).
    """

    normalize: bool = False
    hidden_units: int = Field(128, gt=0)
    num_layers: int = Field(2, gt=0)
    vis_encode_type: Literal["simple", "nature_cnn", "resnet", "match3", "fully_connected"] = "simple"
    memory: MemorySettings | None = None
    goal_conditioning_type: Literal["hyper", "none"] = Field(
        "hyper", description="ML-Agents' goal conditioning; no effect (no env of ours has goal observations)")
    deterministic: bool = False
    layer_norm: bool = True
    activation: Literal["relu", "tanh"] = "relu"
    agent_id: bool | None = Field(None, description="one-hot agent-id input of a shared policy (our addition); "
                                  "null = on for PettingZoo/OpenSpiel seats, off for Unity behaviors (as ML-Agents: "
                                  "a Unity agent feeds only its sensors)")

    @field_validator("goal_conditioning_type", mode="before")
    @classmethod
    def _goal_default(cls, v: Any) -> Any:
        return "hyper" if v is None else v  # None: checkpoints written before the key had a value

    @field_validator("deterministic")
    @classmethod
    def _not_deterministic(cls, v: bool) -> bool:
        if v:
            raise ValueError("true (greedy actions while training) is not supported: training samples its actions; "
                             "marl-evaluate and the exported ONNX (deterministic_* outputs) act greedily already")
        return v


class ExtrinsicSettings(_Strict):
    gamma: float = Field(0.99, ge=0, le=1)
    strength: float = 1.0
    network_settings: dict[str, Any] | None = Field(
        None, exclude=True, description="in ML-Agents' resolved files; the extrinsic signal has no network (as in "
                                        "ML-Agents), so it has no effect")


class RewardSignals(_Strict):
    """``reward_signals``: only ``extrinsic``; ML-Agents' ``curiosity``, ``gail`` and ``rnd`` are refused."""

    extrinsic: ExtrinsicSettings = ExtrinsicSettings()
    curiosity: Any = Field(None, exclude=True)
    gail: Any = Field(None, exclude=True)
    rnd: Any = Field(None, exclude=True)

    @field_validator("curiosity", "gail", "rnd")
    @classmethod
    def _unsupported(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None:
            raise ValueError(f"ML-Agents' {info.field_name} reward signal is not supported (only extrinsic); "
                             "remove it")
        return v


class SelfPlaySettings(_Strict):
    """ML-Agents' ghost-trainer settings (steps are env steps) plus ``elo_k``.

    ML-Agents' code applies no K factor although its docs say K=16; ``elo_k`` makes it explicit.
    """

    save_steps: int = Field(20000, gt=0)
    team_change: int = Field(100000, gt=0)
    swap_steps: int = Field(2000, gt=0)
    window: int = Field(10, gt=0)
    play_against_latest_model_ratio: float = Field(0.5, ge=0, le=1)
    initial_elo: float = 1200.0
    elo_k: float = Field(16.0, gt=0)
    random_opponent_ratio: float = Field(0.0, ge=0, le=1, description="our addition: P(swap draws a uniform-random player)")


class LeagueSettings(_Strict):
    """Our top-level ``league:`` block: link a self-play run to a league (see ``league/training.py``).

    ``config`` is a league YAML (``configs/league/*.yaml``), relative to the working directory like
    ``env_path``. With ``register_snapshots`` every ``register_every``-th self-play snapshot is copied
    into ``<league folder>/policies/<run-id>/`` and added as player ``<run-id>/<Behavior>-<step>``
    (with its parent snapshot as lineage). With ``pfsp_from_league`` the window snapshot played at
    each swap is drawn by PFSP (Vinyals et al. 2019) from the learner's win rates in the league's
    match log instead of uniformly (``marl.selfplay.BehaviorGhost.refresh_win_rates``);
    ``play_against_latest_model_ratio`` still applies first. ``pfsp_from_league`` needs
    ``register_snapshots``.
    """

    config: str
    register_snapshots: bool = True
    register_every: int = Field(1, gt=0, description="register every N-th self-play snapshot")
    pfsp_from_league: bool = False
    pfsp_weighting: Literal["hard", "var", "uniform"] = "hard"
    pfsp_p: float = Field(2.0, gt=0)


class BehaviorSettings(_Strict):
    """One behavior's training settings (ML-Agents' ``TrainerSettings``).

    ``hyperparameters`` is stored as the model of the trainer type (its registry entry's ``hyperparameters``),
    validated once; a mapping is accepted on input. ``even_checkpoints: true`` sets
    ``checkpoint_interval`` to ``max_steps // keep_checkpoints`` (ML-Agents' meaning).
    """

    trainer_type: str = "mappo"
    hyperparameters: SerializeAsAny[BaseModel] = Field(None, validate_default=True)
    network_settings: NetworkSettings = NetworkSettings()
    reward_signals: RewardSignals = RewardSignals()
    init_path: str | None = None
    keep_checkpoints: int = Field(5, ge=1)
    even_checkpoints: bool = False
    checkpoint_interval: int = Field(500000, gt=0)
    max_steps: int = Field(500000, gt=0)
    time_horizon: int = Field(64, gt=0)
    summary_freq: int = Field(50000, gt=0)
    threaded: bool = False
    self_play: SelfPlaySettings | None = None
    behavioral_cloning: Any = Field(None, exclude=True)

    @field_validator("trainer_type")
    @classmethod
    def _trainer(cls, v: str) -> str:
        reg = _registry()
        try:
            return reg.canonical(v)
        except reg.UnknownAlgorithm as exc:
            raise ValueError(str(exc)) from None

    @field_validator("hyperparameters", mode="plain")
    @classmethod
    def _hyperparameters(cls, v: Any, info: ValidationInfo) -> Any:
        t = info.data.get("trainer_type")
        if t is None:  # a bad trainer_type, reported on its own
            return v
        model = _registry().get(t).load("hyperparameters")
        if isinstance(v, model):
            return v
        if isinstance(v, BaseModel):  # another trainer's model (trainer_type changed): re-validate its keys
            v = v.model_dump()
        return model.model_validate({} if v is None else v)

    @field_validator("init_path")
    @classmethod
    def _no_init_path(cls, v: str | None) -> str | None:
        if v is not None:
            raise ValueError("per-behavior initialization is not supported yet; use --initialize-from RUN_ID "
                             "(checkpoint_settings.initialize_from) to start every behavior from another run's weights, "
                             "or set init_path to null")
        return v

    @field_validator("threaded")
    @classmethod
    def _not_threaded(cls, v: bool) -> bool:
        if v:
            raise ValueError("true is not supported: updates already run in our own thread pool (the critic's "
                             "update overlaps the actor's); remove the key or set it to false")
        return v

    @field_validator("self_play")
    @classmethod
    def _self_play_trainer(cls, v: SelfPlaySettings | None, info: ValidationInfo) -> SelfPlaySettings | None:
        t = info.data.get("trainer_type")
        reg = _registry()
        if v is not None and t is not None and not reg.get(t).self_play:
            ok = [n for n in reg.names() if reg.get(n).self_play]
            raise ValueError(f"trainer_type {t} does not support self-play; use {'/'.join(ok)}")
        return v

    @field_validator("behavioral_cloning")
    @classmethod
    def _no_bc(cls, v: Any) -> Any:
        if v is not None:
            raise ValueError("ML-Agents' behavioral cloning (from demonstrations) is not supported; remove it")
        return v

    @model_validator(mode="after")
    def _even_checkpoints(self) -> "BehaviorSettings":
        if self.even_checkpoints:  # ML-Agents: keep_checkpoints checkpoints evenly spaced over max_steps
            object.__setattr__(self, "checkpoint_interval", max(1, self.max_steps // self.keep_checkpoints))
        return self

    @property
    def hp(self) -> Any:
        """The hyperparameter model of this trainer type (its registry entry's), validated on input."""
        return self.hyperparameters


class EnvSettings(_Strict):
    """``env_settings`` (ML-Agents) plus, for PettingZoo envs, ``env_kwargs``, ``behavior_map`` and
    ``supersuit`` (SuperSuit wrappers applied in order, e.g. ``[pad_observations_v0]``)."""

    env_path: str | None = Field(None, description="env id (mpe2.simple_spread_v3, openspiel:connect_four, "
                                                   "pkg.module:factory) or a Unity build path")
    env_args: list[str] | None = Field(None, description="arguments passed to the Unity executable")
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    behavior_map: dict[str, str] = Field(default_factory=dict)
    supersuit: list[Union[str, dict[str, dict[str, Any]]]] = Field(default_factory=list)
    image_layout: Literal["auto", "hwc", "chw"] = Field(
        "auto", description="3-D observations: auto = channel-last when the last axis has <= 4 channels and the "
                            "first more (PettingZoo/Gymnasium), CHW for Unity and OpenSpiel; hwc/chw force it")
    base_port: int = Field(5005, gt=0, lt=65536, description="Unity: port of worker 0 (worker i uses base+i)")
    num_envs: int = Field(1, ge=1, description="env worker processes (1 = in-process)")
    num_areas: int = Field(1, ge=1, description="env copies per worker (ML-Agents' training areas)")
    timeout_wait: int = Field(60, gt=0, description="Unity: seconds to wait for the player to connect")
    seed: int = Field(-1, description="random seed (-1 = random)")
    max_lifetime_restarts: int = Field(10, description="Unity: restarts of a crashed player allowed over the run")
    restarts_rate_limit_n: int = Field(1, description="Unity: restarts allowed per restarts-rate-limit-period-s")
    restarts_rate_limit_period_s: int = Field(60, description="Unity: period (seconds) of restarts-rate-limit-n")
    ray: bool = Field(False, description="run the --num-envs env runners as Ray actors (a local Ray instance "
                                         "unless --ray-address is given)")
    ray_address: str | None = Field(None, description="Ray cluster to join: auto or HOST:PORT (implies --ray)")


class EngineSettings(_Strict):
    width: int = Field(84, description="Unity: window width (pixels)")
    height: int = Field(84, description="Unity: window height (pixels)")
    quality_level: int = Field(5, description="Unity: quality level")
    time_scale: float = Field(20.0, description="Unity: simulation speed-up")
    target_frame_rate: int = Field(-1, description="Unity: target frame rate (-1 = unlimited)")
    capture_frame_rate: int = Field(60, description="Unity: capture frame rate")
    no_graphics: bool = Field(False, description="Unity: run the player without rendering")
    no_graphics_monitor: bool = Field(False, description="ML-Agents: render worker 0 only; only false")

    @field_validator("no_graphics_monitor")
    @classmethod
    def _no_monitor(cls, v: bool) -> bool:
        if v:
            raise ValueError("true (render worker 0 only) is not supported yet; use no_graphics (--no-graphics) "
                             "for all workers, or set it to false")
        return v


class CheckpointSettings(_Strict):
    """``checkpoint_settings``. ``load_model`` / ``train_model`` (ML-Agents' deprecated ``--load`` /
    ``--train``) are accepted only as false."""

    run_id: str = Field("ppo", description="name of this run; results go to <results-dir>/<run-id>")
    initialize_from: str | None = Field(None, description="start from another run's weights (step count restarts)")
    load_model: bool = False
    resume: bool = Field(False, description="continue the run from its latest checkpoint")
    force: bool = Field(False, description="overwrite an existing run with the same run-id")
    train_model: bool = False
    inference: bool = Field(False, description="run the trained policies greedily without training")
    results_dir: str = Field("results", description="folder of the runs")

    @field_validator("load_model", "train_model")
    @classmethod
    def _deprecated(cls, v: bool, info: ValidationInfo) -> bool:
        if v:
            instead = ("use resume: true (--resume)" if info.field_name == "load_model" else
                       "training is the default; use inference: true (--inference) to only run the policies")
            raise ValueError(f"true (ML-Agents' deprecated --{info.field_name.split('_')[0]}) is not supported: "
                             f"{instead}; remove the key or set it to false")
        return v


class TorchSettings(_Strict):
    device: str | None = Field(None, description="cpu, cuda, cuda:1 ... (default: cpu)")


def check_device(device: str | None, where: str = "torch_settings.device") -> None:
    """Check that this machine's torch can use ``device`` before anything starts.

    Args:
        device: ``torch_settings.device`` (None = cpu).
        where: how the message names the setting, e.g. ``--torch-device cuda`` or
            ``run.yaml: torch_settings.device``.

    Raises:
        ConfigError: one line ``<where>: <problem>; <what to do>`` for a device string torch does
            not parse, a device type this torch build lacks (CUDA on a CPU-only build, no GPU or
            driver, MPS off Apple silicon ...) or a device index beyond the visible devices.
    """
    if device is None:
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{where}: not a torch device; use cpu, cuda, cuda:N (N = GPU index) or mps") from None
    if dev.type == "cpu":
        return
    if dev.type == "cuda":
        if torch.version.cuda is None:
            raise ConfigError(f"{where}: this torch ({torch.__version__}) is a CPU-only build; install a CUDA build "
                              "of torch (https://pytorch.org/get-started/locally/) or use --torch-device cpu")
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ConfigError(f"{where}: no CUDA GPU is visible (check nvidia-smi, the driver and "
                              "CUDA_VISIBLE_DEVICES) or use --torch-device cpu")
        if dev.index is not None and dev.index >= n:
            raise ConfigError(f"{where}: only {n} CUDA GPU{'s' * (n > 1)} visible (cuda:0"
                              f"{f'..cuda:{n - 1}' if n > 1 else ''}); pick one of them or use --torch-device cpu")
        return
    backend = getattr(torch.backends, dev.type, None) or getattr(torch, dev.type, None)
    available = getattr(backend, "is_available", None)
    if available is None or not available():
        raise ConfigError(f"{where}: this torch ({torch.__version__}) cannot use '{dev.type}' devices on this "
                          "machine; use cpu, or cuda with a CUDA build of torch")


# environment_parameters: a float, a sampler, or a curriculum ----------------------------------
class _Sampler(_Strict):
    sampler_type: Literal["uniform", "gaussian", "multirangeuniform", "constant"]
    sampler_parameters: dict[str, Any]

    @model_validator(mode="after")
    def _params(self) -> "_Sampler":
        need = {"uniform": {"min_value", "max_value"}, "gaussian": {"mean", "st_dev"},
                "multirangeuniform": {"intervals"}, "constant": {"value"}}[self.sampler_type]
        if set(self.sampler_parameters) != need:
            raise ValueError(f"{self.sampler_type} sampler takes sampler_parameters {sorted(need)}, "
                             f"got {sorted(self.sampler_parameters)}")
        return self


class CompletionCriteria(_Strict):
    behavior: str
    measure: Literal["reward", "progress", "Elo"] = "reward"
    min_lesson_length: int = 0
    signal_smoothing: bool = True
    threshold: float = 0.0
    require_reset: bool = False


class Lesson(_Strict):
    name: str
    value: Union[float, _Sampler]
    completion_criteria: CompletionCriteria | None = None


class Curriculum(_Strict):
    curriculum: list[Lesson]


EnvironmentParameter = Union[float, _Sampler, Curriculum]


class RunConfig(_Strict):
    """A whole run: the resolved YAML (written as ``results/<run-id>/configuration.yaml``)."""

    behaviors: dict[str, BehaviorSettings] = Field(default_factory=dict)
    default_settings: BehaviorSettings | None = None
    env_settings: EnvSettings = EnvSettings()
    engine_settings: EngineSettings = EngineSettings()
    checkpoint_settings: CheckpointSettings = CheckpointSettings()
    torch_settings: TorchSettings = TorchSettings()
    environment_parameters: dict[str, EnvironmentParameter] | None = None
    league: LeagueSettings | None = None
    debug: bool = Field(False, description="full tracebacks on errors")

    def behavior_settings(self, name: str) -> BehaviorSettings:
        """Settings of behavior ``name``; ``default_settings`` when the YAML does not list it.

        Raises:
            ConfigError: neither ``behaviors.<name>`` nor ``default_settings`` exists.
        """
        if name in self.behaviors:
            return self.behaviors[name]
        if self.default_settings is not None:
            return self.default_settings
        raise ConfigError(f"behaviors.{name}: the env has a behavior '{name}' that the config does not list "
                          f"(listed: {', '.join(self.behaviors) or 'none'}); add it or give default_settings")

    def resolved_for(self, behavior_names: list[str]) -> "RunConfig":
        """A copy whose ``behaviors`` lists exactly ``behavior_names`` (in that order), each with its
        full settings (from ``behaviors`` or ``default_settings``), and no ``default_settings``: the
        config a run actually trained, for ``configuration.yaml`` (:meth:`to_yaml`).

        Raises:
            ConfigError: a name with neither ``behaviors.<name>`` nor ``default_settings``.
        """
        behaviors = {n: self.behavior_settings(n).model_copy(deep=True) for n in behavior_names}
        return self.model_copy(update={"behaviors": behaviors, "default_settings": None}, deep=True)

    def to_yaml(self) -> str:
        """The config as YAML, every value resolved (defaults written out); ``default_settings`` is
        left out (see :meth:`resolved_for`), so :func:`load_config` reads back the same settings."""
        return yaml.safe_dump(self.model_dump(mode="json", exclude={"default_settings"}), sort_keys=False)


# ------------------------------------------------------------------------------------ loading
def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _format_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not str(p).startswith(("function-", "tagged-union")))
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key (check the spelling; see the README for the accepted keys)"
    elif "input" in first and first["type"] not in ("missing", "value_error") and not isinstance(first["input"], dict):
        msg += f" (got {first['input']!r})"
    more = len(err.errors()) - 1
    return f"{source}: {loc or '<top level>'}: {msg}" + (f" (and {more} more error{'s' * (more > 1)})" if more else "")


def parse_config(data: dict, source: str = "<config>") -> RunConfig:
    """Validate an already-loaded YAML mapping.

    ``default_settings`` is merged under each behavior before validation, and every behavior's
    ``hyperparameters`` are validated (once) into its trainer's model.

    Raises:
        ConfigError: one line, ``<source>: <key path>: <expected>``.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a YAML mapping at the top level, got {type(data).__name__}")
    data = copy.deepcopy(data)
    defaults = data.get("default_settings") or {}
    if isinstance(defaults, dict) and isinstance(data.get("behaviors"), dict):
        data["behaviors"] = {k: _merge(defaults, v or {}) if isinstance(v, dict) or v is None else v
                             for k, v in data["behaviors"].items()}
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(source, err)) from None
    if cfg.league is not None and cfg.league.pfsp_from_league and not cfg.league.register_snapshots:
        raise ConfigError(f"{source}: league.pfsp_from_league: needs register_snapshots: true (PFSP reads the "
                          "league's results of the registered snapshots)")
    if cfg.league is not None and not any(b.self_play for b in [*cfg.behaviors.values(), cfg.default_settings] if b):
        raise ConfigError(f"{source}: league: registers self-play snapshots, but no behavior has a self_play block "
                          "(add one, or register finished runs with 'league add results/<run-id>')")
    return cfg


def read_yaml(path: str | Path) -> Any:
    """The parsed YAML document of ``path`` (``{}`` for an empty file), not yet validated.

    Raises:
        ConfigError: missing or unreadable file, a file that is not YAML text (binary, not UTF-8,
            control characters), or a YAML syntax error; one line naming the file.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = p.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a YAML text file (byte 0x{exc.object[exc.start]:02x} at offset {exc.start} "
                          "is not UTF-8 text); give the .yaml run config") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.reader.ReaderError as exc:
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError(f"{path}: not a YAML text file (control character 0x{code:02x} at offset {exc.position}); "
                          "give the .yaml run config") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run config.

    Raises:
        ConfigError: missing/unreadable file, not a YAML text file, YAML syntax error, or a schema
            error (one line naming the file and the key).
    """
    return parse_config(read_yaml(path), str(path))
