"""Match execution: ONNX policies in the ML-Agents contract, bots, seeding, seats, and clear errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from league.errors import IncompatibleEnvError, PolicyFileError
from league.match import MatchTask, assign_seats, play_match
from league.policies import PlayerSpec, file_sha256, make_player

C4 = "openspiel:connect_four"


class _ColumnPolicy(torch.nn.Module):
    """Prefers columns in a fixed order (highest score first); illegal columns are masked out."""

    def __init__(self, order: list[int], obs_size: int):
        super().__init__()
        pref = torch.zeros(7)
        for rank, col in enumerate(order):
            pref[col] = 7 - rank
        self.register_buffer("pref", pref)
        self.w = torch.nn.Parameter(torch.zeros(obs_size, 7))

    def forward(self, obs_0, action_masks):
        logits = obs_0.reshape(obs_0.shape[0], -1) @ self.w + self.pref - (1 - action_masks) * 1e9
        act = torch.argmax(logits, dim=1, keepdim=True)
        return act, act, torch.tensor([3.0]), torch.tensor([0.0])


def export_column_policy(path, order, obs_shape=(3, 6, 7)) -> str:
    """A tiny ONNX brain with the ML-Agents contract names (obs_0, action_masks -> deterministic_discrete_actions)."""
    size = int(np.prod(obs_shape))
    torch.onnx.export(_ColumnPolicy(order, size), (torch.zeros(1, *obs_shape), torch.ones(1, 7)), str(path),
                      input_names=["obs_0", "action_masks"],
                      output_names=["discrete_actions", "deterministic_discrete_actions", "version_number", "memory_size"],
                      dynamic_axes={"obs_0": {0: "batch"}, "action_masks": {0: "batch"}}, opset_version=13, dynamo=False)
    return str(path)


@pytest.fixture(scope="module")
def col0(tmp_path_factory):
    return export_column_policy(tmp_path_factory.mktemp("onnx") / "col0.onnx", [0, 1, 2, 3, 4, 5, 6])


def test_onnx_policy_plays_connect_four_with_masks(col0, tmp_path):
    task = MatchTask("m1", C4, 3, (PlayerSpec("col0", col0, file_sha256(col0)), PlayerSpec("rnd", "bot:random")),
                     replay_dir=str(tmp_path))
    res = play_match(task)
    log = json.loads((tmp_path / "m1.json").read_text())["actions"]
    mine = [a for agent, a in log if agent == "player_0"]
    # it fills column 0 (6 cells) first, then column 1: legal moves only, thanks to action_masks
    assert mine[:6] == [0] * min(6, len(mine[:6]))
    if len(mine) > 6:
        assert mine[6] == 1
    assert sorted(s.rank for s in res.seats) in ([0, 1], [0, 0])
    assert res.seats[0].agents == ("player_0",) and res.seats[1].player == "rnd"


def test_same_seed_same_match_and_different_seed_differs():
    seats = (PlayerSpec("a", "bot:random"), PlayerSpec("b", "bot:mcts?simulations=5"))
    r1 = play_match(MatchTask("x", C4, 11, seats))
    r2 = play_match(MatchTask("x", C4, 11, seats))
    assert (r1.seats, r1.episode_length) == (r2.seats, r2.episode_length)
    lengths = {play_match(MatchTask("x", C4, s, seats)).episode_length for s in range(6)}
    assert len(lengths) > 1


def test_mcts_beats_random_and_more_simulations_beat_fewer():
    def score(a, b, n=6):
        pts = 0.0
        for s in range(n):
            seats = (PlayerSpec(a, a), PlayerSpec(b, b)) if s % 2 == 0 else (PlayerSpec(b, b), PlayerSpec(a, a))
            res = play_match(MatchTask(f"g{s}", C4, s, seats))
            mine = next(x for x in res.seats if x.player == a)
            other = next(x for x in res.seats if x.player == b)
            pts += 1.0 if mine.rank < other.rank else 0.5 if mine.rank == other.rank else 0.0
        return pts / n

    assert score("bot:mcts?simulations=30", "bot:random") >= 5 / 6
    assert score("bot:mcts?simulations=200", "bot:mcts?simulations=5") >= 4 / 6


@pytest.mark.parametrize("env_id,length", [("mpe2.simple_adversary_v3:env", 15),  # AEC: 3 agents x 5 cycles
                                            ("mpe2.simple_adversary_v3", 5)])  # as training builds it: ParallelEnv steps
def test_seats_by_behavior_in_aec_and_parallel_envs(env_id, length):
    seats = (PlayerSpec("adv", "bot:random"), PlayerSpec("good", "bot:random"))
    res = play_match(MatchTask("p", env_id, 0, seats, env_kwargs={"max_cycles": 5}))
    assert res.seats[0].agents == ("adversary_0",) and res.seats[1].agents == ("agent_0", "agent_1")
    assert res.episode_length == length
    assert res.seats[0].score != 0.0
    again = play_match(MatchTask("p", env_id, 0, seats, env_kwargs={"max_cycles": 5}))
    assert again.seats == res.seats


def test_assign_seats_rules():
    assert assign_seats(["S?team=0?agent_id=0", "S?team=1?agent_id=1", "S?team=0?agent_id=2", "S?team=1?agent_id=3"],
                        2, "unity") == [["S?team=0?agent_id=0", "S?team=0?agent_id=2"], ["S?team=1?agent_id=1",
                                                                                        "S?team=1?agent_id=3"]]
    with pytest.raises(IncompatibleEnvError, match="cannot split them into 3 seats"):
        assign_seats(["player_0", "player_1"], 3, C4)


def test_incompatible_onnx_and_bot_errors(tmp_path):
    small = export_column_policy(tmp_path / "small.onnx", [3], obs_shape=(2, 3))
    with pytest.raises(IncompatibleEnvError, match=r"policy takes observations \[2, 3\], behavior 'player' gives \[3, 6, 7\]"):
        play_match(MatchTask("i", C4, 0, (PlayerSpec("s", small), PlayerSpec("r", "bot:random"))))
    with pytest.raises(IncompatibleEnvError, match="MCTS needs an OpenSpiel env"):
        play_match(MatchTask("j", "pettingzoo.classic.tictactoe_v3", 0,
                             (PlayerSpec("m", "bot:mcts?simulations=5"), PlayerSpec("r", "bot:random"))))
    with pytest.raises(PolicyFileError, match="unknown argument"):
        make_player("bot:mcts?sims=5", None)
    with pytest.raises(PolicyFileError, match="does not exist"):
        make_player(str(tmp_path / "nope.onnx"), None)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(PolicyFileError, match="not a loadable ONNX model"):
        make_player(str(bad), None)
    with pytest.raises(PolicyFileError, match="changed since it was registered"):
        make_player(small, "0" * 64)


def test_pt_checkpoint_goes_through_marl_inference(tmp_path):
    ckpt = tmp_path / "B-10.pt"
    torch.save({"x": 1}, ckpt)
    try:
        import marl.inference  # noqa: F401
    except ImportError:
        with pytest.raises(PolicyFileError, match="marl.inference.load_policy"):
            make_player(str(ckpt), None)
    else:  # the trainer's loader exists: a bogus checkpoint must still give a one-line PolicyFileError
        with pytest.raises(PolicyFileError):
            make_player(str(ckpt), None)
