"""Self-play (marl/selfplay.py): Elo arithmetic, ghost bookkeeping, turn-based and two-team games, resume, evaluation."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from envs.adapter import ArrayEnv
from envs.spec import ActionSpec, BehaviorSpec
from envs.vector import VecEnv, default_factory
from marl.algos.factory import make_trainer
from marl.checkpoint import load_checkpoint
from marl.config import ConfigError, SelfPlaySettings
from marl.evaluate_vs import play_games, wilson_interval
from marl.policy import MCTSPolicy, RandomPolicy
from marl.inference import load_policy
from marl.run import prepare_run_dir, train
from marl.selfplay import elo_expected, elo_update, game_result, team_slots
from marl_helpers import cfg_of

# The trainer sizes its update's intra-op threads from torch's inter-op pool; on a shared, busy CPU
# two threads per tiny MLP update were ~4x slower than one. (Can only be set before parallel work.)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass


def selfplay_config(tmp_path, env="openspiel:tic_tac_toe", run_id="sp", max_steps=4000, areas=8, env_kwargs=None,
                    **self_play) -> dict:
    sp = {"save_steps": 1000, "team_change": 2000, "swap_steps": 300, "window": 3, **self_play}
    return {"behaviors": {"player" if "tic" in env else "SoccerTwos": {
                "trainer_type": "ippo",
                "hyperparameters": {"buffer_size": 512, "batch_size": 256, "num_epoch": 2, "learning_rate": 0.003,
                                    "learning_rate_schedule": "constant", "beta": 0.01},
                "network_settings": {"hidden_units": 32, "num_layers": 2},
                "max_steps": max_steps, "summary_freq": 1000, "checkpoint_interval": 100000, "keep_checkpoints": 2,
                "self_play": sp}},
            "env_settings": {"env_path": env, "env_kwargs": env_kwargs or {}, "num_envs": 1, "num_areas": areas, "seed": 5},
            "checkpoint_settings": {"run_id": run_id, "results_dir": str(tmp_path)}}


def run(data):
    cfg = cfg_of(data)
    return train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False)


def trainer_and_venv(data):
    cfg = cfg_of(data)
    es = cfg.env_settings
    factory = default_factory(es.env_path, es.env_kwargs)
    probe = factory(0, None)
    spec = probe.spec
    probe.close()
    trainer = make_trainer(spec, cfg, es.num_areas, torch.device("cpu"))
    return trainer, VecEnv(factory, spec, 1, es.num_areas, seed=es.seed)


# ------------------------------------------------------------------------------------------ Elo
def test_elo_update_matches_hand_computed_values():
    # equal ratings, K=16: E = 0.5, a win moves +8 / -8
    assert elo_update(1200, 1200, 1.0, 16) == pytest.approx((1208.0, 1192.0))
    # 1400 vs 1200: E = 1 / (1 + 10^(-0.5)) = 0.7597469266; a loss costs 16 * 0.7597469266 = 12.1559508
    assert elo_expected(1400, 1200) == pytest.approx(0.7597469266, abs=1e-9)
    assert elo_update(1400, 1200, 0.0, 16) == pytest.approx((1387.8440492, 1212.1559508), abs=1e-6)
    # a draw against a stronger player gains; K=1 is ML-Agents' code (change = S - E = 0.5 - 0.2402530734)
    assert elo_update(1200, 1400, 0.5, 1.0) == pytest.approx((1200.2597469, 1399.7402531), abs=1e-6)
    with pytest.raises(ValueError, match="result must be in"):
        elo_update(1200, 1200, 2.0)
    assert game_result(1.0, -1.0) == 1.0 and game_result(0.0, 0.0) == 0.5 and game_result(-1.0, 1.0) == 0.0


def test_wilson_interval_hand_computed():
    lo, hi = wilson_interval(50, 100)
    assert (lo, hi) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    lo, hi = wilson_interval(0, 1000)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.003827, abs=1e-5)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


# ------------------------------------------------------------------------------------------ teams
def test_team_slots_from_teams_and_seats_and_error_without_opponent():
    act = ActionSpec(discrete_branches=(3,))
    soccer = BehaviorSpec("S", ("S?team=0?agent_id=0", "S?team=0?agent_id=1", "S?team=1?agent_id=2", "S?team=1?agent_id=3"),
                          (4,), act, (0, 0, 1, 1))
    assert [t.tolist() for t in team_slots(soccer, turn_based=False)] == [[0, 1], [2, 3]]
    seats = BehaviorSpec("player", ("player_0", "player_1"), (4,), act, (0, 0))
    assert [t.tolist() for t in team_slots(seats, turn_based=True)] == [[0], [1]]
    with pytest.raises(ConfigError, match="behaviors.player.self_play: .*one team"):
        team_slots(seats, turn_based=False)


# ------------------------------------------------------------------------------------------ ghost bookkeeping
def test_snapshots_swaps_team_rotation_and_learning_mask(tmp_path):
    data = selfplay_config(tmp_path, save_steps=400, team_change=800, swap_steps=150, window=2,
                           play_against_latest_model_ratio=0.0)
    trainer, venv = trainer_and_venv(data)
    ghost = trainer.selfplay.ghosts["player"]
    C = trainer.collector  # acting and recording, apart from the learners
    learning, buffer = C.learning["player"], C.buffers["player"]
    teams_seen, opponents = [], set()
    step = 0
    try:
        while step < 2000:
            n, logs = trainer.collect_and_train(venv, step)
            step += n
            teams_seen.append(ghost.learning_team)
            opponents.add(id(ghost.opponent))
            # only the learning seat's slot is trained on, in every env copy
            assert (learning[:, ghost.learning_team]).all() and not (learning[:, 1 - ghost.learning_team]).any()
            assert "Self-play/ELO" in logs["player"]
            # no experience of the opponent seat was stored
            assert not buffer.valid[: buffer.t, :, 1 - ghost.learning_team].any()
            assert buffer.valid[: buffer.t, :, ghost.learning_team].any()
    finally:
        venv.close()
    assert set(teams_seen) == {0, 1}, teams_seen  # the learning team rotated
    assert len(ghost.snapshots) == 2  # the window
    files = sorted((tmp_path / "sp" / "player" / "snapshots").glob("player-*.pt"))
    assert [f.name for f in files] == sorted(s.path.name for s in ghost.snapshots)  # files rotate with the window
    assert not ghost.opponent_is_latest and len(opponents) > 2  # ratio 0: always a window snapshot, swapped often
    pol = load_policy(files[-1])  # a snapshot file is a loadable policy
    assert pol.spec.name == "player" and load_checkpoint(files[-1])["extra"]["selfplay_snapshot"]
    assert ghost.games > 100 and ghost.elo != 1200.0


def test_opponent_slots_act_with_the_opponent_snapshot(tmp_path):
    trainer, venv = trainer_and_venv(selfplay_config(tmp_path, play_against_latest_model_ratio=0.0))
    try:
        trainer.selfplay.begin_rollout(0)
        ghost = trainer.selfplay.ghosts["player"]
        # make the opponent deterministic and recognisable: it always plays the first legal square
        with torch.no_grad():
            for p in ghost.opponent_actor.logits.parameters():
                p.zero_()
            ghost.opponent_actor.logits.bias[:] = torch.linspace(800, 0, 9)
        arrays = venv.arrays
        opp = 1 - ghost.learning_team
        checked = 0
        for _ in range(20):
            trainer.collector.act(arrays)
            for e in np.flatnonzero(arrays["player/active"][:, opp]):
                legal = np.flatnonzero(arrays["player/mask"][e, opp] > 0.5)
                assert arrays["player/act_d"][e, opp, 0] == legal[0]
                checked += 1
            venv.step()
    finally:
        venv.close()
    assert checked > 20


def test_random_opponent_plays_uniformly_over_legal_moves(tmp_path):
    """self_play.random_opponent_ratio = 1: every swap draws the uniform-random player (legal moves only)."""
    trainer, venv = trainer_and_venv(selfplay_config(tmp_path, random_opponent_ratio=1.0))
    try:
        trainer.selfplay.begin_rollout(0)
        ghost = trainer.selfplay.ghosts["player"]
        assert ghost.opponent_is_random and ghost.opponent.elo == 1200.0
        assert ghost.opponent_actor is None  # the opponent is the uniform-random policy, not a snapshot
        arrays = venv.arrays
        opp = 1 - ghost.learning_team
        firsts, n = 0, 0
        for _ in range(40):
            trainer.collector.act(arrays)
            for e in np.flatnonzero(arrays["player/active"][:, opp]):
                legal = np.flatnonzero(arrays["player/mask"][e, opp] > 0.5)
                a = arrays["player/act_d"][e, opp, 0]
                assert a in legal
                firsts += a == legal[0]
                n += 1
            venv.step()
    finally:
        venv.close()
    assert n > 40 and firsts < 0.5 * n  # not the snapshot's first-legal-square play


# ------------------------------------------------------------------------------------------ turn-based rewards
def test_loser_is_credited_when_the_game_ends_on_the_winners_move(tmp_path):
    """PettingZoo classic: the learning seat's last decision before the opponent's winning move gets -1."""
    data = selfplay_config(tmp_path, env="pettingzoo.classic.tictactoe_v3", team_change=10**6)
    trainer, venv = trainer_and_venv(data)
    try:
        trainer.collect_and_train(venv, 0)
        ghost = trainer.selfplay.ghosts["player"]
        buf = trainer.collector.buffers["player"]
        me = ghost.learning_team
        ended = buf.done[: buf.t, :, me] > 0
        final_rewards = buf.reward[: buf.t, :, me][ended]
    finally:
        venv.close()
    assert set(np.unique(final_rewards).tolist()) <= {-1.0, 0.0, 1.0}
    assert (final_rewards == -1.0).any() and (final_rewards == 1.0).any()  # losses reached the non-mover


def test_openspiel_terminal_rewards_are_credited_once():
    env = ArrayEnv("openspiel:tic_tac_toe")
    o = env.out
    for move in (0, 3, 1, 4, 2):  # player 0 wins on its third move
        i = int(np.argmax(o["player/active"]))
        o["player/act_d"][i, 0] = move
        stats = env.step()
    assert stats is not None
    np.testing.assert_array_equal(stats.returns["player"], [1.0, -1.0])


# ------------------------------------------------------------------------------------------ end to end
def test_short_tic_tac_toe_self_play_beats_random_and_elo_rises(tmp_path):
    data = selfplay_config(tmp_path, max_steps=20000, areas=16, save_steps=2000, team_change=4000, swap_steps=500,
                           window=5)
    b = data["behaviors"]["player"]
    b["hyperparameters"].update(buffer_size=2048, batch_size=256, num_epoch=4, learning_rate=0.005)
    b["network_settings"]["hidden_units"] = 64
    run(data)
    status = json.loads((tmp_path / "sp" / "run_logs" / "training_status.json").read_text())
    assert status["player"]["elo"] > 1250.0  # the learner kept beating its older snapshots
    def ttt(_copy):
        return ArrayEnv("openspiel:tic_tac_toe")

    trained = play_games(ttt, "player", load_policy(tmp_path / "sp"), RandomPolicy(), 300).total.as_dict()
    # uniform random against itself over both seats: score ~0.5, ~35% losses
    base = play_games(ttt, "player", RandomPolicy(), RandomPolicy(), 300, seed=1).total.as_dict()
    assert trained["score"] > 0.75 and trained["score"] > base["score"] + 0.2, (trained, base)
    assert trained["losses_rate"] < 0.15 and trained["losses_rate"] < 0.5 * base["losses_rate"], (trained, base)


def test_resume_keeps_elo_and_snapshot_window(tmp_path):
    data = selfplay_config(tmp_path, max_steps=1500)
    run(data)
    d = tmp_path / "sp"
    status = json.loads((d / "run_logs" / "training_status.json").read_text())
    elo = status["player"]["elo"]
    extra = load_checkpoint(d / "player" / "checkpoint.pt")["extra"]
    assert elo == pytest.approx(extra["elo"]) and elo != 1200.0
    n_snaps = len(extra["selfplay"]["snapshots"])
    # resume with nothing left to train: the final save must carry the restored Elo, not initial_elo
    data["checkpoint_settings"]["resume"] = True
    run(data)
    status2 = json.loads((d / "run_logs" / "training_status.json").read_text())
    extra2 = load_checkpoint(d / "player" / "checkpoint.pt")["extra"]
    assert status2["player"]["elo"] == pytest.approx(elo)
    assert len(extra2["selfplay"]["snapshots"]) == n_snaps
    assert extra2["selfplay"]["learning_team"] == extra["selfplay"]["learning_team"]
    # and training on continues from there
    data["behaviors"]["player"]["max_steps"] = 2100
    run(data)
    status3 = json.loads((d / "run_logs" / "training_status.json").read_text())
    assert abs(status3["player"]["elo"] - elo) < abs(elo - 1200.0) + 400  # continued from elo, no jump back to 1200


def test_two_team_soccer_self_play(tmp_path):
    data = selfplay_config(tmp_path, env="envs.games.soccer", max_steps=1000, areas=4, env_kwargs={"max_steps": 40},
                           team_change=400, save_steps=200, swap_steps=100)
    data["behaviors"]["SoccerTwos"]["hyperparameters"].update(buffer_size=256, batch_size=128)
    trainer, venv = trainer_and_venv(data)
    ghost = trainer.selfplay.ghosts["SoccerTwos"]
    learning = trainer.collector.learning["SoccerTwos"]
    assert [t.tolist() for t in ghost.teams] == [[0, 1], [2, 3]]
    step, seen = 0, set()
    try:
        while step < 1000:
            n, logs = trainer.collect_and_train(venv, step)
            step += n
            seen.add(ghost.learning_team)
            expect = np.zeros(4, bool)
            expect[ghost.teams[ghost.learning_team]] = True
            assert (learning == expect[None]).all()
            assert "Self-play/ELO" in logs["SoccerTwos"]
    finally:
        venv.close()
    assert seen == {0, 1} and ghost.games >= 1000 // 41  # every episode (goal or time-out) is rated


# ------------------------------------------------------------------------------------------ evaluation
def test_openspiel_observations_match_pyspiel_and_mcts_beats_random():
    env = ArrayEnv("openspiel:tic_tac_toe")
    o = env.out
    rng = np.random.default_rng(0)
    for _ in range(4):  # the tensor the policy sees is pyspiel's observation tensor of the player to move
        i = int(np.argmax(o["player/active"]))
        state = env.env.game_state
        assert state.current_player() == i
        np.testing.assert_array_equal(o["player/obs"][i].ravel(), np.asarray(state.observation_tensor(i), np.float32))
        np.testing.assert_array_equal(np.flatnonzero(o["player/mask"][i]), state.legal_actions(i))
        o["player/act_d"][i, 0] = rng.choice(state.legal_actions(i))
        env.step()
    rep = play_games(lambda _c: ArrayEnv("openspiel:tic_tac_toe"), "player", MCTSPolicy(25, seed=1), RandomPolicy(), 20)
    d = rep.total.as_dict()
    assert d["losses"] <= 2 and d["wins"] >= 12, d  # MCTS-25 crushes random play


def test_self_play_config_errors(tmp_path):
    bad = selfplay_config(tmp_path)
    bad["behaviors"]["player"]["self_play"]["elo_k"] = 0
    with pytest.raises(ConfigError, match="self_play.elo_k"):
        cfg_of(bad)
    assert SelfPlaySettings().elo_k == 16.0


def test_league_block_registers_snapshots_with_lineage_and_draws_pfsp_opponents(tmp_path, monkeypatch):
    """The trainer's ``league:`` link: snapshots become league players (files copied into the league),
    lineage follows training order, and window opponents are drawn by PFSP from the payoff matrix."""
    from league.cli import main as league_main
    from league.config import load_config as load_league
    from league.league import League
    from league.synthetic import fake_result

    monkeypatch.chdir(tmp_path)
    (tmp_path / "lg.yaml").write_text("name: ttt\nenv: {id: 'openspiel:tic_tac_toe'}\n"
                                      "players:\n  - {name: random, policy: 'bot:random'}\n")
    assert league_main(["init", "lg.yaml"]) == 0
    data = selfplay_config(tmp_path, max_steps=3000, window=5, play_against_latest_model_ratio=0.0)
    data["league"] = {"config": "lg.yaml", "register_every": 1, "pfsp_from_league": True}
    run(data)
    lg = League(load_league(str(tmp_path / "lg.yaml")))
    snaps = sorted((p for p in lg.store.players() if p.name.startswith("sp/")), key=lambda p: p.version)
    steps = [p.version for p in snaps]
    assert len(snaps) >= 3 and steps[0] == 0 and steps == sorted(set(steps))  # one per save_steps, in training order
    assert [p.parent for p in snaps] == [None] + [p.name for p in snaps[:-1]]
    assert all((tmp_path / "policies" / "sp").joinpath(f"player-{p.version}.pt").is_file() for p in snaps)
    # --resume continues the lineage from the last registered snapshot
    data["checkpoint_settings"]["resume"] = True
    data["behaviors"]["player"]["max_steps"] = 4500
    run(data)
    more = sorted((p for p in lg.store.players() if p.name.startswith("sp/")), key=lambda p: p.version)
    assert len(more) > len(snaps) and more[len(snaps)].parent == snaps[-1].name
    snaps = more
    # PFSP (hard) in a resumed trainer: the learner's last snapshots (the anchors) always lose to the
    # oldest snapshot and always beat the second oldest -> the oldest is drawn far more than uniformly
    trainer, venv = trainer_and_venv(data)
    trainer.load_extra("player", load_checkpoint(tmp_path / "sp" / "player" / "checkpoint.pt")["extra"])
    g = trainer.selfplay.ghosts["player"]
    window = [s.player for s in g.snapshots]
    assert len(window) == 5 and list(g.lineage) == window[-3:]
    for a in g.lineage:
        for k in range(10):
            for opp, score in ((window[0], -1.0), (window[1], 1.0)):
                r = fake_result(f"{a}-{opp}-{k}", a, opp, score)
                lg.store.record_match(dataclasses.replace(r, env_id="openspiel:tic_tac_toe"))
    g.refresh_win_rates(force=True)
    picks = [g._window_pick().player for _ in range(300)]
    assert picks.count(window[0]) > 120 and picks.count(window[1]) < 15  # uniform: 60 each
    venv.close()
    # a different policy at an already registered step (resumed from an earlier checkpoint) gets its
    # own name and file; the registered file is never overwritten; re-registering is a no-op
    from league.training import LeagueLink
    from marl.config import LeagueSettings

    link = LeagueLink(LeagueSettings(config="lg.yaml"), "sp")
    first = tmp_path / "policies" / "sp" / "player-0.pt"
    before = first.read_bytes()
    (tmp_path / "other").mkdir()
    other = tmp_path / "other" / "player-0.pt"
    other.write_bytes((tmp_path / "policies" / "sp" / f"player-{snaps[1].version}.pt").read_bytes())
    name = link.register_snapshot(str(other), "player", 0)
    assert name.startswith("sp/player-0~") and first.read_bytes() == before
    assert link.register_snapshot(str(other), "player", 0) == name
    assert link.register_snapshot(str(first), "player", 0) == "sp/player-0"


def test_league_block_errors(tmp_path):
    data = selfplay_config(tmp_path)
    data["league"] = {"config": str(tmp_path / "missing.yaml")}
    with pytest.raises(ConfigError, match="league.config"):
        trainer_and_venv(data)
    with pytest.raises(ConfigError, match="needs register_snapshots"):
        cfg_of({**data, "league": {"config": "x.yaml", "register_snapshots": False, "pfsp_from_league": True}})
    del data["behaviors"]["player"]["self_play"]
    with pytest.raises(ConfigError, match="no behavior has a self_play block"):
        cfg_of(data)
