"""Does a self-play run get stronger? Rate its kept checkpoints against each other (Bradley-Terry).

    .venv/bin/python benchmarks/checkpoint_ladder.py results/<run-id> [--behavior SoccerTwos] [--games 40]
        [--env-kwarg ball_touch=0.0] [--random] [--env envs.games.soccer --env-kwarg rays=true]

Training's ``Self-play/ELO`` rates the learner against its own recent snapshots, which improve with it, so
it stays near its start while the policy gets better (ML-Agents' SoccerTwos Elo needs millions of steps to
move). This plays every pair of the run's kept checkpoints (``<Behavior>/<Behavior>-<step>.pt`` and the
final ``checkpoint.pt``; plus a uniform-random player with ``--random``) ``--games`` games, half on each
team, actions sampled, with the run's env settings (``--env-kwarg`` overrides one, e.g. no touch reward so
goals decide), and fits Bradley-Terry ratings on the Elo scale with 95% bootstrap intervals
(``league.ratings``, random anchored at 0 when present). Rising ratings with training steps = the run
got stronger.
"""
from __future__ import annotations

import argparse
import itertools
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import yaml

    from league.ratings import compute_ratings
    from league.records import Game
    from marl.evaluate_vs import env_maker, make_opponent, play_games

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--behavior", default="SoccerTwos")
    p.add_argument("--games", type=int, default=40, help="games per pair, split over both teams")
    p.add_argument("--env-kwarg", action="append", default=[], help="KEY=VALUE (YAML value) overriding env_kwargs")
    p.add_argument("--random", action="store_true", help="add a uniform-random player")
    p.add_argument("--env", default=None, help="play on this env instead of the run's (a run trained on a Unity "
                   "build or the stand-in, rated in-process on the same game: envs.games.soccer with rays=true)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    run = Path(a.run_dir)
    overrides = {k: yaml.safe_load(v) for k, _, v in (kv.partition("=") for kv in a.env_kwarg)}
    _, make_env = env_maker(run, a.env, overrides=overrides)

    players: dict[str, str] = {}
    for f in sorted((run / a.behavior).glob(f"{a.behavior}-*.pt"), key=lambda f: int(re.findall(r"\d+", f.stem)[-1])):
        players[f"{int(re.findall(r'[0-9]+', f.stem)[-1]) // 1000}k"] = str(f)
    if a.random:
        players["random"] = "random"
    if len(players) < 2:
        print(f"error: {run / a.behavior}: fewer than two checkpoints to compare", file=sys.stderr)
        return 2
    games, seq = [], 0
    for (na, pa), (nb, pb) in itertools.combinations(players.items(), 2):
        rep = play_games(make_env, a.behavior, make_opponent(pa, a.seed), make_opponent(pb, a.seed + 1), a.games,
                         seed=a.seed + seq, stochastic=True, opponent_name=nb)
        t = rep.total
        for outcome, n in (((0, 1), t.wins), ((0, 0), t.draws), ((1, 0), t.losses)):
            for _ in range(n):
                games.append(Game(((na,), (nb,)), outcome, seq=seq))
                seq += 1
        print(f"{na:>7} vs {nb:<7} W/D/L {t.wins}/{t.draws}/{t.losses}", flush=True)
    ratings = compute_ratings("bt", games, players=list(players))
    base = ratings["random"].rating if "random" in ratings else 0.0
    print(f"\nBradley-Terry (Elo scale{', random = 0' if a.random else ''}), {a.games} games per pair:")
    for name in players:
        r = ratings[name]
        lo, hi = (r.lower - base, r.upper - base) if r.lower is not None else (float("nan"),) * 2
        print(f"  {name:>7}: {r.rating - base:7.1f}  [{lo:7.1f}, {hi:7.1f}]  ({r.games} games)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
