"""The one play path (marl.policy / marl.play) as every consumer sees it: evaluation sends the env the
actions training would send, league matches of ONNX brains equal their checkpoints seat by seat (agent
slot files, recurrent state), a run's SuperSuit wrappers follow it into leagues and ``marl-evaluate-vs``,
and Unity-style behaviors train and export without an agent id.

Every policy here is built directly (random weights, perturbed so that actions depend on the observation
and on the agent slot) or trained for a few hundred steps; each test checks that its comparison could
fail (slots / recurrent state / bounds actually change the actions).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from gymnasium import spaces
from pettingzoo import ParallelEnv

from envs.adapter import ArrayEnv
from envs.spec import ActionSpec
from league.match import MatchTask, play_match
from league.policies import PlayerCache, PlayerSpec, file_sha256
from marl.algos.factory import make_trainer
from marl.checkpoint import FORMAT, spec_to_dict
from marl.evaluate import evaluate_run
from marl.export import export_all_slots
from marl.export.onnx_policy import OnnxPolicy
from marl.inference import load_policy
from marl.policy import Policy, scale_continuous
from marl_helpers import cfg_of
from test_export_helpers import continuous, make_actor_payload, one_torch_thread  # noqa: F401 (autouse)


# ------------------------------------------------------------------------------------------ helpers
class SpyPolicy(Policy):
    """Wraps a policy and records every ``act`` call (inputs and outputs), acting exactly like it."""

    def __init__(self, inner: Policy):
        self.inner, self.spec, self.name, self.path = inner, inner.spec, inner.name, inner.path
        self.needs_game_state = inner.needs_game_state
        self.calls: list[dict] = []

    @property
    def takes_agent_id(self) -> bool:
        return self.inner.takes_agent_id

    def reset(self, seed: int) -> None:
        self.inner.reset(seed)

    def check_fits(self, spec, where: str = "") -> None:
        self.inner.check_fits(spec, where)

    def reset_hidden(self, hidden, rows):
        return self.inner.reset_hidden(hidden, rows)

    def act(self, obs, agent_index, mask=None, hidden=None, deterministic=True, game_states=None):
        out = self.inner.act(obs, agent_index, mask, hidden, deterministic, game_states)
        self.calls.append({"obs": np.array(obs), "idx": np.array(agent_index),
                           "mask": None if mask is None else np.array(mask),
                           "hidden": None if hidden is None else np.array(hidden), "d": np.array(out[0])})
        return out


def _perturb(module: torch.nn.Module, scale: float = 0.3, seed: int = 0) -> None:
    """Move weights away from the (near-uniform) initialisation so actions depend on inputs and ids."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def _trainer_payload(trainer, spec, cfg, behavior: str, step: int = 100) -> dict:
    """A checkpoint payload as ``marl-learn`` writes it (``marl.run._payload``)."""
    s = cfg.behavior_settings(behavior)
    return {"format": FORMAT, "behavior": behavior, "trainer_type": s.trainer_type, "step": step,
            "env_id": spec.env_id, "behavior_spec": spec_to_dict(spec.behavior(behavior)),
            "state_shape": list(spec.state_shape), "network_settings": s.network_settings.model_dump(),
            "trainer": trainer.state_dict(behavior), "extra": {}}


def _match_log(task: MatchTask, cache: PlayerCache | None = None):
    """``(seat scores and ranks, episode length, replay actions, action hash)`` of one match."""
    res = play_match(task, cache)
    replay = json.loads(Path(res.replay_path).read_text())
    return [(s.player, s.agents, s.score, s.rank) for s in res.seats], res.episode_length, replay["actions"], \
        replay["action_hash"]


# ------------------------------------------------ 1. continuous actions: evaluation == what training sends
SPY_LOW = np.array([-2.0, 0.0, -0.5], np.float32)
SPY_HIGH = np.array([4.0, 10.0, 0.5], np.float32)
SPY_LOG: list[tuple[str, np.ndarray, np.ndarray]] = []  # (agent, observation it acted on, action received)


class SpyBoxEnv(ParallelEnv):
    """Two agents, observations N(0, 3^2) [5], a Box action with non-unit bounds; records the actions it gets."""

    metadata = {"name": "spy_box_v0", "render_modes": []}

    def __init__(self, max_cycles: int = 6):
        self.possible_agents = ["bot_0", "bot_1"]
        self.max_cycles = max_cycles
        self._obs_space = spaces.Box(-20.0, 20.0, (5,), np.float32)
        self._act_space = spaces.Box(SPY_LOW, SPY_HIGH, dtype=np.float32)
        self.rng = np.random.default_rng()

    def observation_space(self, agent):
        return self._obs_space

    def action_space(self, agent):
        return self._act_space

    def _observe(self):
        self.obs = {a: self.rng.normal(0.0, 3.0, 5).astype(np.float32) for a in self.agents}
        return {a: o.copy() for a, o in self.obs.items()}

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.t, self.agents = 0, list(self.possible_agents)
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions):
        for a in self.agents:
            SPY_LOG.append((a, self.obs[a].copy(), np.array(actions[a], np.float64)))
        rewards = {a: -float(np.abs(np.asarray(actions[a])).sum()) for a in self.agents}
        self.t += 1
        done = self.t >= self.max_cycles
        obs = self._observe()
        out = (obs, rewards, {a: False for a in self.agents}, {a: done for a in self.agents},
               {a: {} for a in self.agents})
        if done:
            self.agents = []
        return out


def spy_box_env(max_cycles: int = 6) -> SpyBoxEnv:
    return SpyBoxEnv(max_cycles)


@pytest.fixture(scope="module")
def continuous_run(tmp_path_factory):
    """A MAPPO run folder (2 agents, 3 continuous actions with an agent-id input) on :class:`SpyBoxEnv`."""
    run = tmp_path_factory.mktemp("cont") / "cont"
    payload, actor = make_actor_payload(continuous(3), trainer_type="mappo", n_agents=2, obs_shape=(5,), seed=3,
                                        behavior="bot")
    spec = ArrayEnv("test_play_path:spy_box_env").spec.behavior("bot")
    assert spec.action.low == tuple(SPY_LOW) and spec.action.high == tuple(SPY_HIGH)
    payload["behavior_spec"] = spec_to_dict(spec)  # as training writes it: the env's bounds
    payload["env_id"] = "test_play_path:spy_box_env"
    (run / "bot").mkdir(parents=True)
    torch.save(payload, run / "bot" / "checkpoint.pt")
    export_all_slots(payload, run / "bot.onnx")
    (run / "configuration.yaml").write_text(yaml.safe_dump({
        "behaviors": {"bot": {"trainer_type": "mappo", "network_settings": {"hidden_units": 32, "num_layers": 2}}},
        "env_settings": {"env_path": "test_play_path:spy_box_env", "env_kwargs": {"max_cycles": 6}}}))
    return run, actor


@pytest.mark.parametrize("brain", ["checkpoint.pt", "onnx"])
def test_continuous_evaluation_sends_the_trainers_actions(continuous_run, brain):
    run, actor = continuous_run
    SPY_LOG.clear()
    ck = None if brain == "checkpoint.pt" else str(run / "bot.onnx")
    report = evaluate_run(run, episodes=4, seed=7, checkpoint=ck)
    assert report["behaviors"]["bot"]["episodes"] == 4
    assert len(SPY_LOG) == 4 * 6 * 2
    slots = {"bot_0": 0, "bot_1": 1}
    obs = torch.from_numpy(np.stack([o for _, o, _ in SPY_LOG]))
    ids = torch.nn.functional.one_hot(torch.tensor([slots[a] for a, _, _ in SPY_LOG]), 2).float()
    with torch.no_grad():
        _, mean, _ = actor.act(obs, ids, None, deterministic=True)
    scaled = np.clip(scale_continuous(mean).numpy().astype(np.float64), -1.0, 1.0)
    expected = SPY_LOW + (scaled + 1.0) / 2.0 * (SPY_HIGH - SPY_LOW)
    got = np.stack([a for _, _, a in SPY_LOG])
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * (SPY_HIGH - SPY_LOW).max())
    # not vacuous: many actions lie strictly inside the bounds but beyond 1/3 of the half-range (where
    # the old x3 saturated them), and the agent id changes the action
    inside = (np.abs(scaled) > 0.4) & (np.abs(scaled) < 0.95)
    assert inside.sum() >= 10, np.abs(scaled).max()
    with torch.no_grad():
        _, other, _ = actor.act(obs, 1.0 - ids, None, deterministic=True)
    assert np.abs(other.numpy() - mean.numpy()).max() > 0.1


# ------------------------------------------- 2. league: an ONNX snapshot in the second seat == its .pt
TTT = "openspiel:tic_tac_toe"


@pytest.fixture(scope="module")
def ttt_snapshot(tmp_path_factory):
    """A shared IPPO actor for both tic-tac-toe seats (id input), as ``.pt`` and per-slot ``.onnx``."""
    d = tmp_path_factory.mktemp("ttt")
    spec = ArrayEnv(TTT).spec.behavior("player")
    payload, _ = make_actor_payload(ActionSpec((9,)), trainer_type="ippo", n_agents=2, obs_shape=spec.obs_shape,
                                    seed=11, behavior="player")
    payload["behavior_spec"] = spec_to_dict(spec)
    payload["env_id"] = TTT
    pt = d / "player-1000.pt"
    torch.save(payload, pt)
    files = export_all_slots(payload, d / "player-1000.onnx")
    assert [f.name for f in files] == ["player-1000.onnx", "player-1000_agent1.onnx"]
    return str(pt), str(files[0])


def test_league_onnx_snapshot_in_second_seat_equals_its_checkpoint(ttt_snapshot, tmp_path):
    pt, onnx_file = ttt_snapshot
    rnd = PlayerSpec("random", "bot:random")
    spy = SpyPolicy(load_policy(pt))
    cache = PlayerCache({(pt, file_sha256(pt)): spy})
    for seed in range(6):
        a = _match_log(MatchTask(f"m{seed}", TTT, seed, (rnd, PlayerSpec("snap", pt, file_sha256(pt))),
                                 replay_dir=str(tmp_path / "pt")), cache)
        b = _match_log(MatchTask(f"m{seed}", TTT, seed, (rnd, PlayerSpec("snap", onnx_file, file_sha256(onnx_file))),
                                 replay_dir=str(tmp_path / "onnx")))
        assert a == b, f"seed {seed}: .pt {a} != .onnx {b}"
    # the snapshot always acted as slot 1, and slot 0 would have moved differently somewhere
    idx = np.concatenate([c["idx"] for c in spy.calls])
    assert len(idx) >= 12 and set(idx.tolist()) == {1}
    differs = 0
    for c in spy.calls:
        d0, _, _ = spy.inner.act(c["obs"], np.zeros_like(c["idx"]), c["mask"])
        differs += int((d0 != c["d"]).any())
    assert differs >= 2, "slot 0 and slot 1 act alike on every position met: the test cannot tell the slot files apart"


# ------------------------------------------- 3. league: a recurrent QMIX brain (.onnx) == its .pt
COORD = "envs.games.coordination"
COORD_KW = {"n_targets": 3, "max_cycles": 8}


@pytest.fixture(scope="module")
def qmix_brain(tmp_path_factory):
    d = tmp_path_factory.mktemp("qmix")
    data = {"behaviors": {"agent": {"trainer_type": "qmix",
                                    "hyperparameters": {"buffer_size": 64, "batch_size": 8, "rnn_hidden_dim": 16,
                                                        "mixing_embed_dim": 8, "hypernet_layers": 1},
                                    "max_steps": 1000}},
            "env_settings": {"env_path": COORD, "env_kwargs": COORD_KW, "num_envs": 1, "num_areas": 1},
            "checkpoint_settings": {"run_id": "q", "results_dir": str(d)}}
    cfg = cfg_of(data)
    spec = ArrayEnv(COORD, COORD_KW).spec
    torch.manual_seed(0)  # the networks' initialisation
    trainer = make_trainer(spec, cfg, 1, torch.device("cpu"))
    net = trainer.actor("agent")
    _perturb(net, 1.0, seed=1)
    with torch.no_grad():
        net.fc2.bias.zero_()  # else one action's bias wins everywhere
    payload = _trainer_payload(trainer, spec, cfg, "agent")
    assert payload["trainer"]["arch"]["obs_agent_id"] and payload["trainer"]["arch"]["obs_last_action"]
    pt = d / "agent-100.pt"
    torch.save(payload, pt)
    files = export_all_slots(payload, d / "agent-100.onnx")
    assert len(files) == 2
    pol = OnnxPolicy(files[0])
    assert pol.has_memory and pol.memory_size > 0  # recurrent_in / recurrent_out
    return str(pt), str(files[0])


@pytest.mark.parametrize("seat", [0, 1])
def test_league_recurrent_qmix_onnx_plays_like_its_checkpoint(qmix_brain, tmp_path, seat):
    pt, onnx_file = qmix_brain
    rnd = PlayerSpec("random", "bot:random")

    def seats(policy):
        me = PlayerSpec("qmix", policy, file_sha256(policy))
        return (me, rnd) if seat == 0 else (rnd, me)

    spy = SpyPolicy(load_policy(pt))
    cache = PlayerCache({(pt, file_sha256(pt)): spy})
    for seed in range(3):
        a = _match_log(MatchTask(f"q{seed}", COORD, seed, seats(pt), env_kwargs=COORD_KW,
                                 replay_dir=str(tmp_path / "pt")), cache)
        b = _match_log(MatchTask(f"q{seed}", COORD, seed, seats(onnx_file), env_kwargs=COORD_KW,
                                 replay_dir=str(tmp_path / "onnx")))
        assert a[1] == COORD_KW["max_cycles"]  # a whole episode
        assert a == b, f"seat {seat}, seed {seed}: .pt {a} != .onnx {b}"
    # not vacuous: the carried recurrent state (and the slot) change the QMIX agent's actions
    assert all(set(c["idx"].tolist()) == {seat} for c in spy.calls)
    no_memory = slot_swapped = 0
    for c in spy.calls:
        d_fresh, _, _ = spy.inner.act(c["obs"], c["idx"], c["mask"], None)
        no_memory += int((d_fresh != c["d"]).any())
        d_other, _, _ = spy.inner.act(c["obs"], 1 - c["idx"], c["mask"], c["hidden"])
        slot_swapped += int((d_other != c["d"]).any())
    assert no_memory >= 1 and slot_swapped >= 1, (no_memory, slot_swapped)


# ------------------------------------------- 4. SuperSuit-wrapped runs in leagues and marl-evaluate-vs
FRAME_STACK = [{"frame_stack_v1": {"stack_size": 2}}]


@pytest.fixture(scope="module")
def supersuit_run(tmp_path_factory):
    """A real (tiny) IPPO run on tic-tac-toe with ``frame_stack_v1`` (observations [3, 3, 6])."""
    from marl.run import prepare_run_dir, train

    d = tmp_path_factory.mktemp("ss")
    data = {"behaviors": {"player": {"trainer_type": "ippo",
                                     "hyperparameters": {"buffer_size": 256, "batch_size": 128, "num_epoch": 1,
                                                         "learning_rate": 0.003, "learning_rate_schedule": "constant"},
                                     "network_settings": {"hidden_units": 16, "num_layers": 1},
                                     "max_steps": 512, "summary_freq": 256, "checkpoint_interval": 256,
                                     "keep_checkpoints": 2}},
            "env_settings": {"env_path": TTT, "supersuit": FRAME_STACK, "num_envs": 1, "num_areas": 4, "seed": 1},
            "checkpoint_settings": {"run_id": "ttt_stack", "results_dir": str(d)}}
    cfg = cfg_of(data)
    train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False)
    run = d / "ttt_stack"
    assert (run / "player" / "checkpoint.pt").is_file() and (run / "player.onnx").is_file()
    return run


def _league_yaml(path: Path, supersuit: list | None) -> str:
    env = {"id": TTT, **({"supersuit": supersuit} if supersuit is not None else {})}
    path.write_text(yaml.safe_dump({"name": path.stem, "env": env,
                                    "players": [{"name": "random", "policy": "bot:random"}],
                                    "tournament": {"games_per_pair": 1, "seed": 0}, "runner": {"workers": 1}}))
    return str(path)


def test_supersuit_run_plays_in_a_matching_league_and_in_evaluate_vs(supersuit_run, tmp_path, capsys):
    from league.cli import main as league_main
    from league.config import load_config
    from league.league import League
    from marl.evaluate_vs import main as evaluate_vs_main

    cfg = _league_yaml(tmp_path / "stacked.yaml", FRAME_STACK)
    assert league_main(["init", cfg]) == 0
    assert league_main(["add", cfg, str(supersuit_run)]) == 0
    assert league_main(["run", cfg, "--mode", "round_robin", "--games-per-pair", "1", "--workers", "1"]) == 0
    capsys.readouterr()
    lg = League(load_config(cfg))
    players = {p for g in lg.games() for t in g.teams for p in t}
    assert players == {"random", "ttt_stack/player-256", "ttt_stack/player-512"}, players
    assert len(lg.games()) == 6  # 3 players, 1 game per pair and seat order

    for policy in (supersuit_run, supersuit_run / "player.onnx"):
        assert evaluate_vs_main([str(policy), "--opponent", "random", "--games", "4", "--seed", "1"]) == 0
        out = capsys.readouterr().out
        assert "[all seats]: 4 games, W/D/L " in out, out


def test_supersuit_run_refused_by_a_league_without_the_wrapper(supersuit_run, tmp_path, capsys):
    from league.cli import main as league_main

    cfg = _league_yaml(tmp_path / "plain.yaml", None)
    assert league_main(["init", cfg]) == 0
    capsys.readouterr()
    code = league_main(["add", cfg, str(supersuit_run)])
    err = capsys.readouterr().err
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "env.supersuit" in lines[0] and "Traceback" not in err, err


# ------------------------------------------- 5. Unity-style behaviors: no agent-id input by default
UNITY_BUILD = "/builds/SoccerTwos.x86_64"


def _soccer_trainer(agent_id: bool | None):
    """A MAPPO trainer on the in-process SoccerTwos game, with the env id of a Unity build."""
    from marl.algos.mappo import uses_agent_id
    from marl.config import NetworkSettings

    net = {"hidden_units": 16, "num_layers": 1, **({} if agent_id is None else {"agent_id": agent_id})}
    data = {"behaviors": {"SoccerTwos": {"trainer_type": "mappo", "network_settings": net, "max_steps": 1000,
                                         "hyperparameters": {"buffer_size": 64, "batch_size": 32}}},
            "env_settings": {"env_path": UNITY_BUILD, "num_envs": 1, "num_areas": 1}}
    cfg = cfg_of(data)
    env = ArrayEnv("envs.games.soccer")
    # the in-process game is a Python env id (an agent id by default); seen as a build, it is not
    assert uses_agent_id(NetworkSettings(), "envs.games.soccer") and not uses_agent_id(NetworkSettings(), UNITY_BUILD)
    spec = dataclasses.replace(env.spec, env_id=UNITY_BUILD)
    torch.manual_seed(0)  # the networks' initialisation
    trainer = make_trainer(spec, cfg, 2, torch.device("cpu"))
    _perturb(trainer.actor("SoccerTwos"), 0.6, seed=5)
    # observations of the four players over a few random steps
    rng = np.random.default_rng(0)
    obs = []
    env.reset(3)
    for _ in range(20):
        obs.append(env.out["SoccerTwos/obs"].copy())
        env.out["SoccerTwos/act_d"][...] = rng.integers(0, 3, env.out["SoccerTwos/act_d"].shape)
        env.step()
    env.close()
    # plus wider ones (early-game positions differ little): [2 * 20 * 4, 16], rows cycle through slots 0..3
    obs = np.concatenate([*obs, rng.normal(0.0, 1.0, (80, 16))]).astype(np.float32)
    idx = np.tile(np.arange(4), 40)
    return trainer, spec, cfg, obs, idx


def _torch_greedy(actor, obs, idx, n_agents=4):
    ids = torch.nn.functional.one_hot(torch.as_tensor(idx), n_agents).float()[:, : actor.n_agents]
    with torch.no_grad():
        d, _, _ = actor.act(torch.from_numpy(obs), ids, None, deterministic=True)
    return d.numpy()


def test_unity_behaviors_train_and_export_without_agent_id(tmp_path):
    trainer, spec, cfg, obs, idx = _soccer_trainer(None)
    actor = trainer.actor("SoccerTwos")
    assert actor.n_agents == 0
    first = next(m for m in actor.body if isinstance(m, torch.nn.Linear))
    assert first.in_features == 16  # the 16 observations only, no id columns
    payload = _trainer_payload(trainer, spec, cfg, "SoccerTwos")
    files = export_all_slots(payload, tmp_path / "SoccerTwos.onnx")
    assert [f.name for f in files] == ["SoccerTwos.onnx"]
    brain = OnnxPolicy(files[0])
    assert brain.metadata["marl.takes_agent_id"] == "0" and not brain.takes_agent_id
    want = _torch_greedy(actor, obs, idx)
    assert len({tuple(r) for r in want}) >= 4  # actions vary with the observation
    d, _, _ = brain.act(obs, idx)
    np.testing.assert_array_equal(d, want)
    pt = tmp_path / "SoccerTwos.pt"
    torch.save(payload, pt)
    torch_policy = load_policy(pt)
    assert not torch_policy.takes_agent_id
    np.testing.assert_array_equal(torch_policy.act(obs, idx)[0], want)


def test_unity_behaviors_with_agent_id_true_get_one_file_per_slot(tmp_path):
    trainer, spec, cfg, obs, idx = _soccer_trainer(True)
    actor = trainer.actor("SoccerTwos")
    assert actor.n_agents == 4
    payload = _trainer_payload(trainer, spec, cfg, "SoccerTwos")
    files = export_all_slots(payload, tmp_path / "SoccerTwos.onnx")
    assert [f.name for f in files] == ["SoccerTwos.onnx", *(f"SoccerTwos_agent{i}.onnx" for i in (1, 2, 3))]
    differs = 0
    for slot, f in enumerate(files):
        brain = OnnxPolicy(f)
        assert brain.metadata["marl.takes_agent_id"] == "1" and brain.agent_slot == slot
        rows = np.full(len(obs), slot)
        want = _torch_greedy(actor, obs, rows)
        np.testing.assert_array_equal(brain._act(obs, rows)[0], want)  # this file alone acts as this slot
        differs += int((want != _torch_greedy(actor, obs, np.zeros_like(rows))).any())
    assert differs >= 2  # slots really act differently
    # the slot-0 file routes a mixed batch to each slot's file
    np.testing.assert_array_equal(OnnxPolicy(files[0]).act(obs, idx)[0], _torch_greedy(actor, obs, idx))
