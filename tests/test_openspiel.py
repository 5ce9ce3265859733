"""OpenSpiel through our own adapter (envs/openspiel.py): chance nodes, imperfect information and
simultaneous moves give the per-player returns of hand-played games; the start-up check refuses what
it cannot play in one line; QMIX/VDN refuse unfit behaviors; a missing optional package names the
install line; NashConv through the policy bridge (benchmarks/nashconv.py)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from envs.adapter import ArrayEnv
from envs.openspiel import OpenSpielEnv
from envs.registry import EnvError, install_hint, make_env, missing_package_message
from marl.play import play_episodes
from marl.policy import MCTSPolicy, RandomPolicy

ROOT = Path(__file__).resolve().parents[1]
PASS, BET = 0, 1                 # Kuhn poker actions
FOLD, CALL, RAISE = 0, 1, 2      # Leduc poker actions


def play_scripted(env_id, kwargs, seed, choose, deals=None):
    """Play one episode through ArrayEnv (what training and evaluation step), ``choose(env, slot, k) -> action``
    for the k-th decision. Returns (EpisodeStats, decisions, chance outcomes seen in the final history)."""
    env = ArrayEnv(env_id, kwargs, seed=seed)
    k = 0
    while True:
        active = np.flatnonzero(env.out["player/active"])
        assert len(active) == 1, active  # one decision per env step, never a chance node
        slot = int(active[0])
        state = env.game_state
        assert not state.is_chance_node()
        history = list(state.history())
        mask = env.out["player/mask"][slot]
        a = choose(env, slot, k, history)
        assert mask[a] == 1.0, (a, mask)
        env.out["player/act_d"][slot, 0] = a
        stats = env.step()
        k += 1
        if stats is not None:
            env.close()
            return stats, k, history


# --------------------------------------------------------------------------------- chance nodes
def _kuhn_winner(cards):  # 0 = J, 1 = Q, 2 = K; the higher card wins the showdown
    return 0 if cards[0] > cards[1] else 1


@pytest.mark.parametrize("line, decisions, stake, showdown", [
    ((PASS, PASS), 2, 1, True),          # both check: showdown for the antes
    ((BET, BET), 2, 2, True),            # bet, call: showdown for 2
    ((BET, PASS), 2, 1, False),          # bet, fold: player 0 takes the antes
    ((PASS, BET, PASS), 3, -1, False),   # check, bet, fold: player 1 takes the antes
    ((PASS, BET, BET), 3, 2, True),      # check, bet, call: showdown for 2
])
def test_kuhn_poker_returns_match_hand_played_games(line, decisions, stake, showdown):
    seen = set()
    for seed in range(12):  # several deals, so both players win showdowns
        stats, k, history = play_scripted("openspiel:kuhn_poker", None, seed, lambda env, slot, k, h: line[k])
        cards = history[:2]  # the two chance outcomes dealt before the first decision
        seen.add(tuple(cards))
        if showdown:
            w = _kuhn_winner(cards)
            expected = [stake, -stake] if w == 0 else [-stake, stake]
        else:
            expected = [stake, -stake]
        assert k == decisions and stats.length == decisions
        np.testing.assert_array_equal(stats.returns["player"], np.array(expected, np.float32))
    assert len(seen) >= 4  # the deal is random across seeds


def _leduc_rank(card):
    return card // 2  # six cards: J J Q Q K K


def _leduc_sign(p0, p1, public):
    """+1 when player 0 wins the showdown, -1 when player 1 does, 0 for a split pot."""
    pair0, pair1 = _leduc_rank(p0) == _leduc_rank(public), _leduc_rank(p1) == _leduc_rank(public)
    if pair0 != pair1:
        return 1 if pair0 else -1
    return int(np.sign(_leduc_rank(p0) - _leduc_rank(p1)))


@pytest.mark.parametrize("line, stake", [
    ((RAISE, FOLD), None),                                  # raise, fold: player 0 wins the ante
    ((CALL, CALL, CALL, CALL), 1),                          # checked down: antes only
    ((RAISE, CALL, RAISE, RAISE, CALL), 1 + 2 + 4 + 4),     # raise 2 in round 1, raise and re-raise 4 in round 2
])
def test_leduc_poker_returns_match_hand_played_games(line, stake):
    signs = set()
    for seed in range(10):
        publics = []

        def choose(env, slot, k, history):
            if k == 2:  # first decision of round 2: the public card was dealt by chance after round 1
                publics.append(history[-1])
            return line[k]

        stats, k, history = play_scripted("openspiel:leduc_poker", None, seed, choose)
        assert k == len(line)
        if stake is None:
            expected = [1.0, -1.0]
        else:
            sign = _leduc_sign(history[0], history[1], publics[0])
            signs.add(sign)
            expected = [sign * stake, -sign * stake]
        np.testing.assert_array_equal(stats.returns["player"], np.array(expected, np.float32))
    if stake is not None:
        assert len(signs) >= 2


def test_chance_is_seeded_and_continues_across_episodes():
    def deals(seed):
        env = ArrayEnv("openspiel:kuhn_poker", seed=seed)
        out = []
        for _ in range(30):
            out.append(tuple(env.game_state.history()[:2]))
            while True:
                slot = int(np.flatnonzero(env.out["player/active"])[0])
                env.out["player/act_d"][slot, 0] = PASS
                if env.step() is not None:
                    break
        return out

    a, b = deals(3), deals(3)
    assert a == b                       # same seed, same deals, episode after episode
    assert len(set(a)) >= 4             # reset() without a seed continues the stream (not one fixed deal)
    assert deals(4) != a


# --------------------------------------------------------------------------------- simultaneous moves
@pytest.mark.parametrize("returns_type, expected", [("win_loss", [1, -1]),
                                                    ("point_difference", [1, -1]),  # points minus their mean (2)
                                                    ("total_points", [3, 1])])
def test_goofspiel_returns_match_a_hand_played_game(returns_type, expected):
    # 3 cards, prizes 3, 2, 1 in that order. Bids (card values): turn 1: 3 vs 1 -> player 0 takes 3;
    # turn 2: 2 vs 2 -> tie, the prize is discarded; turn 3 (forced: one card left) 1 vs 3 -> player 1 takes 1.
    bids = {0: [3, 2], 1: [1, 2]}
    kwargs = {"num_cards": 3, "points_order": "descending", "returns_type": returns_type}
    before = {}

    def choose(env, slot, k, history):
        if slot == 1:  # player 1 chooses after player 0 but must not see player 0's bid
            assert env.out["player/obs"][1].tolist() == before[k // 2]
        else:
            before[k // 2] = env.out["player/obs"][1].tolist()
        return bids[slot][k // 2] - 1  # action = card value - 1

    stats, k, _ = play_scripted("openspiel:goofspiel", kwargs, 0, choose)
    assert k == 4  # two joint moves, each two decisions
    np.testing.assert_array_equal(stats.returns["player"], np.array(expected, np.float32))


@pytest.mark.parametrize("bids, expected", [
    ([(2, 1), (1, 0)], [1, -1]),   # player 0 outbids twice: the wrestler is pushed off player 1's side
    ([(0, 1), (0, 1)], [-1, 1]),   # mirrored
    ([(2, 2), (2, 2)], [0, 0]),    # ties: nobody moves, coins run out, the wrestler stays in the middle
])
def test_oshi_zumo_returns_match_hand_played_games(bids, expected):
    kwargs = {"coins": 4, "size": 1, "horizon": 10}
    stats, k, _ = play_scripted("openspiel:oshi_zumo", kwargs, 0, lambda env, slot, k, h: bids[k // 2][slot])
    assert k == 2 * len(bids)
    np.testing.assert_array_equal(stats.returns["player"], np.array(expected, np.float32))


def test_random_play_returns_equal_pyspiel_returns_and_mcts_reaches_the_state():
    """Every game of the issue: the episode returns the env credits equal the game's own returns."""
    for game, kwargs in [("kuhn_poker", None), ("leduc_poker", {"obs_tensor": "information_state"}),
                         ("goofspiel", {"num_cards": 4}), ("oshi_zumo", {"coins": 6, "size": 2})]:
        env = OpenSpielEnv(f"openspiel:{game}", kwargs)
        rng = np.random.default_rng(0)
        for ep in range(20):
            env.reset(seed=ep)
            total = np.zeros(len(env.possible_agents))
            for agent in env.agent_iter(10_000):
                _, _, term, trunc, info = env.last()
                env.step(None if term or trunc else int(rng.choice(np.flatnonzero(info["action_mask"]))))
                total += [env.rewards.get(a, 0.0) for a in env.possible_agents]
            assert env.game_state.is_terminal()
            np.testing.assert_allclose(total, env.game_state.returns())
    # the MCTS bot searches the live pyspiel state (imperfect information: it sees the true deal)
    results = play_episodes(lambda c: ArrayEnv("openspiel:kuhn_poker"), {"player": [MCTSPolicy(20, seed=1), RandomPolicy()]},
                            episodes=6, seed=2, copies=2)
    assert len(results) == 6
    assert all(abs(r.returns["player"].sum()) < 1e-6 and r.returns["player"][0] != 0 for r in results)


def test_observation_is_the_game_tensor_with_a_setting_for_the_information_state():
    import pyspiel

    env = ArrayEnv("openspiel:kuhn_poker", seed=0)
    state, slot = env.game_state, int(np.flatnonzero(env.out["player/active"])[0])
    assert env.spec.behaviors[0].obs_shape == (7,)
    np.testing.assert_array_equal(env.out["player/obs"][slot], state.observation_tensor(slot))
    np.testing.assert_array_equal(env.out["player/mask"][slot], [1.0, 1.0])
    env = ArrayEnv("openspiel:kuhn_poker", {"obs_tensor": "information_state"}, seed=0)
    env.out["player/act_d"][0, 0] = PASS
    env.step()  # player 1 to act after a check
    assert env.spec.behaviors[0].obs_shape == (11,)
    np.testing.assert_array_equal(env.out["player/obs"][1], env.game_state.information_state_tensor(1))
    assert ArrayEnv("openspiel:connect_four").spec.behaviors[0].obs_shape == (3, 6, 7)  # CHW planes, as before
    assert isinstance(ArrayEnv("openspiel:tic_tac_toe").game_state, pyspiel.State)


def test_pettingzoo_api_conformance():
    from pettingzoo.test import api_test

    for game, kwargs in [("kuhn_poker", None), ("goofspiel", {"num_cards": 4})]:
        api_test(OpenSpielEnv(f"openspiel:{game}", kwargs), num_cycles=30)


# --------------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("env_id, kwargs, message", [
    ("openspiel:mfg_garnet", None, "mfg_garnet is a mean-field game; only sequential and simultaneous-move"),
    ("openspiel:coin_game", None, "coin_game offers only string observations"),
    ("openspiel:connect_four", {"obs_tensor": "information_state"},
     r"env_kwargs\.obs_tensor: connect_four has no information-state tensor \(it offers: observation\)"),
    ("openspiel:kuhn_poker", {"obs_tensor": "belief"}, r"env_kwargs\.obs_tensor: 'belief' is not one of"),
    ("openspiel:kuhn_poker", {"plyers": 3}, r"env_kwargs plyers: not parameters of kuhn_poker \(its parameters: players"),
    ("openspiel:kuhn_poker", {"players": "3"}, r"env_kwargs\.players: kuhn_poker takes a int"),
    ("openspiel:kuhn_pokr", None, "Unknown game 'kuhn_pokr' in OpenSpiel; did you mean kuhn_poker"),
])
def test_games_we_cannot_play_are_refused_in_one_line(env_id, kwargs, message):
    with pytest.raises(EnvError, match=message) as info:
        make_env(env_id, kwargs)
    assert "\n" not in str(info.value)


def test_illegal_action_is_one_line():
    env = OpenSpielEnv("openspiel:tic_tac_toe")
    env.reset(seed=0)
    env.step(4)
    with pytest.raises(EnvError, match=r"player_1 played action 4, which is not legal now \(legal: \[0, 1, 2, 3, 5"):
        env.step(4)


def _learn_error(tmp_path, capsys, trainer_type, env_path, behaviors, behavior_map=None):
    from marl.cli.learn import main

    cfg = {"behaviors": {b: {"trainer_type": trainer_type, "max_steps": 100} for b in behaviors},
           "env_settings": {"env_path": env_path, "num_areas": 1, "behavior_map": behavior_map or {}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main([str(path), "--run-id", "r", "--results-dir", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    return err


@pytest.mark.parametrize("trainer_type", ["qmix", "vdn"])
def test_qmix_and_vdn_refuse_zero_sum_and_single_agent_behaviors(tmp_path, capsys, trainer_type):
    err = _learn_error(tmp_path, capsys, trainer_type, "openspiel:tic_tac_toe", ["player"])
    assert err == (f"error: behaviors.player.trainer_type: {trainer_type} learns from the team reward, which is always "
                   "0 in the zero-sum game 'openspiel:tic_tac_toe'; use ippo or mappo with self_play")
    err = _learn_error(tmp_path, capsys, trainer_type, "envs.games.two_step", ["player", "agent"],
                       {"agent_0": "player", "agent_1": "agent"})
    assert err.startswith(f"error: behaviors.player.trainer_type: {trainer_type} mixes the Q-values of a behavior's "
                          "agents into one team value, and behavior 'player' has one agent; use ippo (or mappo)"), err


# --------------------------------------------------------------------------------- missing packages
def test_missing_optional_package_names_the_install_line(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("pettingzoo.butterfly") or m.startswith("pettingzoo.sisl")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pymunk", None)  # import pymunk now fails as if it were not installed
    monkeypatch.setitem(sys.modules, "Box2D", None)
    with pytest.raises(EnvError) as info:
        make_env("pettingzoo.butterfly.pistonball_v6")
    in_checkout = Path(sys.prefix).resolve() == ROOT / ".venv"
    line = '.venv/bin/pip install -e ".[butterfly]"' if in_checkout else f'-m pip install -e "{ROOT}[butterfly]"'
    assert "needs the optional package 'pymunk', which is not installed" in str(info.value)
    assert line in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(EnvError, match=r"needs the optional package 'Box2D'.*\[sisl\]"):
        make_env("pettingzoo.sisl.multiwalker_v9")
    assert missing_package_message("pettingzoo.classic.chess_v6", "chess").endswith(
        install_hint("classic") + (f" (run in {ROOT})" if in_checkout else ""))
    # outside the checkout's venv the line names this interpreter and the checkout
    monkeypatch.setattr(sys, "prefix", "/opt/elsewhere")
    assert install_hint("sisl") == f'{sys.executable} -m pip install -e "{ROOT}[sisl]"'


def test_a_missing_env_version_suggests_the_installed_one():
    with pytest.raises(EnvError, match=r"did you mean .*knights_archers_zombies_v11"):
        make_env("pettingzoo.butterfly.knights_archers_zombies_v10")


# --------------------------------------------------------------------------------- NashConv bridge
def _nashconv_module():
    spec = importlib.util.spec_from_file_location("nashconv_bridge", ROOT / "benchmarks" / "nashconv.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class KuhnNashPolicy:
    """A Nash equilibrium of Kuhn poker (alpha = 0; Kuhn 1950), read from our observation tensor
    [player one-hot (2), card one-hot J/Q/K (3), pot contributions (2)]: the bridge must hand each
    information state's tensor to the right row for NashConv to be 0."""

    name = "kuhn-nash"

    def action_probabilities(self, obs, agent_index, mask):
        out = np.zeros((len(obs), 2))
        for i, o in enumerate(obs):
            player, card, pot = int(np.argmax(o[:2])), int(np.argmax(o[2:5])), tuple(o[5:7])
            assert player == agent_index[i]
            facing_bet = pot[0] != pot[1]
            if player == 0:
                bet = [0.0, 0.0, 0.0][card] if not facing_bet else [0.0, 1 / 3, 1.0][card]
            else:
                bet = [1 / 3, 0.0, 1.0][card] if not facing_bet else [0.0, 1 / 3, 1.0][card]
            out[i] = [1 - bet, bet]
        return out


def test_nashconv_bridge_scores_uniform_and_equilibrium_policies():
    nc = _nashconv_module()
    assert nc.nash_conv(RandomPolicy(None), "openspiel:kuhn_poker") == pytest.approx(0.9166667, abs=1e-6)
    assert nc.nash_conv(KuhnNashPolicy(), "openspiel:kuhn_poker") == pytest.approx(0.0, abs=1e-9)
    assert nc.uniform_nash_conv("openspiel:leduc_poker", {"obs_tensor": "information_state"}) == pytest.approx(
        4.7472222, abs=1e-6)
    with pytest.raises(nc.NashConvError, match="needs a sequential game"):
        nc.nash_conv(RandomPolicy(None), "openspiel:goofspiel")


@pytest.mark.parametrize("env_id, kwargs", [
    ("pettingzoo.butterfly.pistonball_v6", {"n_pistons": 4}),   # extra butterfly (pymunk)
    ("pettingzoo.sisl.multiwalker_v9", {}),                     # extra sisl (Box2D)
    ("pettingzoo.classic.leduc_holdem_v4", {}),                 # extra classic (rlcard)
    ("pettingzoo.classic.chess_v6", {}),                        # extra classic (chess)
])
def test_the_extras_envs_build_and_reset(env_id, kwargs):
    """The [dev] extras install the butterfly, sisl and classic packages, so these envs are tested."""
    env = make_env(env_id, kwargs)
    env.reset(seed=0)
    assert len(env.possible_agents) >= 2
    env.close()


def test_mcts_refuses_simultaneous_move_games_in_one_line():
    import pytest

    from envs.adapter import ArrayEnv
    from marl.play import play_episodes
    from marl.policy import MCTSPolicy, PolicyError

    with pytest.raises(PolicyError, match="OpenSpiel's MCTS cannot play 'goofspiel'"):
        play_episodes(lambda _c: ArrayEnv("openspiel:goofspiel"), {"player": MCTSPolicy(5)}, 1, copies=1)
