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
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


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
    shared_critic: bool = False  # accepted for ML-Agents compatibility; MAPPO's critic is always shared
    # MAPPO additions (official repo marlbenchmark/on-policy defaults)
    max_grad_norm: float = Field(10.0, gt=0)
    value_loss_coef: float = Field(1.0, ge=0)
    use_value_norm: bool = True
    use_huber_loss: bool = True
    huber_delta: float = Field(10.0, gt=0)
    use_clipped_value_loss: bool = True
    adam_eps: float = Field(1e-5, gt=0)

    @model_validator(mode="after")
    def _batch_fits(self) -> "PPOHyperparameters":
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


HYPERPARAMETERS: dict[str, type[BaseModel]] = {"mappo": PPOHyperparameters, "ippo": PPOHyperparameters,
                                               "qmix": QMIXHyperparameters, "vdn": QMIXHyperparameters}
"""trainer_type -> hyperparameter model; trainers register theirs here (QMIX/VDN do)."""

TRAINER_ALIASES = {"ppo": "ippo", "poca": "mappo"}


class MemorySettings(_Strict):
    sequence_length: int = Field(64, gt=0)
    memory_size: int = Field(128, gt=0)


class NetworkSettings(_Strict):
    """Network shape. ``normalize``: running mean/std observation normalisation (ML-Agents);
    ``layer_norm``: LayerNorm on the inputs (MAPPO's ``use_feature_normalization``)."""

    normalize: bool = False
    hidden_units: int = Field(128, gt=0)
    num_layers: int = Field(2, gt=0)
    vis_encode_type: Literal["simple", "nature_cnn", "resnet", "match3", "fully_connected"] = "simple"
    memory: MemorySettings | None = None
    goal_conditioning_type: str | None = None
    deterministic: bool = False
    layer_norm: bool = True
    activation: Literal["relu", "tanh"] = "relu"


class ExtrinsicSettings(_Strict):
    gamma: float = Field(0.99, ge=0, le=1)
    strength: float = 1.0


class RewardSignals(_Strict):
    extrinsic: ExtrinsicSettings = ExtrinsicSettings()


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
    """One behavior's training settings (ML-Agents' ``TrainerSettings``)."""

    trainer_type: str = "mappo"
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
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

    @model_validator(mode="after")
    def _trainer(self) -> "BehaviorSettings":
        t = TRAINER_ALIASES.get(self.trainer_type, self.trainer_type)
        if t not in HYPERPARAMETERS:
            raise ValueError(f"trainer_type '{self.trainer_type}' is not one of "
                             f"{sorted(set(HYPERPARAMETERS) | set(TRAINER_ALIASES))}")
        object.__setattr__(self, "trainer_type", t)
        return self

    @property
    def hp(self) -> Any:
        """The validated hyperparameter model for this trainer type."""
        return HYPERPARAMETERS[self.trainer_type].model_validate(self.hyperparameters)


class EnvSettings(_Strict):
    """``env_settings`` (ML-Agents) plus, for PettingZoo envs, ``env_kwargs``, ``behavior_map`` and
    ``supersuit`` (SuperSuit wrappers applied in order, e.g. ``[pad_observations_v0]``)."""

    env_path: str | None = None
    env_args: list[str] | None = None
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    behavior_map: dict[str, str] = Field(default_factory=dict)
    supersuit: list[Union[str, dict[str, dict[str, Any]]]] = Field(default_factory=list)
    base_port: int = Field(5005, gt=0, lt=65536)
    num_envs: int = Field(1, ge=1)
    num_areas: int = Field(1, ge=1)
    timeout_wait: int = Field(60, gt=0)
    seed: int = -1
    max_lifetime_restarts: int = 10
    restarts_rate_limit_n: int = 1
    restarts_rate_limit_period_s: int = 60


class EngineSettings(_Strict):
    width: int = 84
    height: int = 84
    quality_level: int = 5
    time_scale: float = 20.0
    target_frame_rate: int = -1
    capture_frame_rate: int = 60
    no_graphics: bool = False
    no_graphics_monitor: bool = False


class CheckpointSettings(_Strict):
    run_id: str = "ppo"
    initialize_from: str | None = None
    load_model: bool = False
    resume: bool = False
    force: bool = False
    train_model: bool = False
    inference: bool = False
    results_dir: str = "results"


class TorchSettings(_Strict):
    device: str | None = None


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
    debug: bool = False

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

    def to_yaml(self) -> str:
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
    elif "input" in first and first["type"] not in ("missing",) and not isinstance(first["input"], dict):
        msg += f" (got {first['input']!r})"
    more = len(err.errors()) - 1
    return f"{source}: {loc or '<top level>'}: {msg}" + (f" (and {more} more error{'s' * (more > 1)})" if more else "")


def parse_config(data: dict, source: str = "<config>") -> RunConfig:
    """Validate an already-loaded YAML mapping.

    ``default_settings`` is merged under each behavior before validation, and every behavior's
    ``hyperparameters`` are validated against its trainer's model.

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
    for name, b in cfg.behaviors.items():
        try:
            b.hyperparameters = b.hp.model_dump()
        except ValidationError as err:
            line = _format_error(source, err).split(": ", 1)[1]
            raise ConfigError(f"{source}: behaviors.{name}.hyperparameters.{line}") from None
    if cfg.default_settings is not None:
        try:
            cfg.default_settings.hyperparameters = cfg.default_settings.hp.model_dump()
        except ValidationError as err:
            line = _format_error(source, err).split(": ", 1)[1]
            raise ConfigError(f"{source}: default_settings.hyperparameters.{line}") from None
    if cfg.league is not None and cfg.league.pfsp_from_league and not cfg.league.register_snapshots:
        raise ConfigError(f"{source}: league.pfsp_from_league: needs register_snapshots: true (PFSP reads the "
                          "league's results of the registered snapshots)")
    if cfg.league is not None and not any(b.self_play for b in [*cfg.behaviors.values(), cfg.default_settings] if b):
        raise ConfigError(f"{source}: league: registers self-play snapshots, but no behavior has a self_play block "
                          "(add one, or register finished runs with 'league add results/<run-id>')")
    return cfg


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML run config.

    Raises:
        ConfigError: missing/unreadable file, YAML syntax error, or a schema error (one line).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_config(data, str(path))
