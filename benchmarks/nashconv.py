"""NashConv of a trained policy in a two-player (or n-player) sequential OpenSpiel game, exactly.

NashConv (Lanctot et al. 2017; OpenSpiel's ``open_spiel.python.algorithms.exploitability.nash_conv``)
is the sum over players of what a best response gains against the others' policies: 0 at a Nash
equilibrium; the uniform-random policy scores 0.9167 in Kuhn poker and 4.747 in Leduc poker.

The bridge: OpenSpiel's ``TabularPolicy`` lists every information state of the game; for each one
this script builds the observation our env gives that player there (:class:`envs.openspiel.TensorReader`:
the observation or information-state tensor chosen by the run's ``env_kwargs.obs_tensor``), the
legal-action mask and the agent index (= the player id), asks our policy for its action
probabilities (the stochastic policy, not the greedy one), and writes them into the table. The
table is then scored by ``nash_conv``.

    python benchmarks/nashconv.py results/kuhn1                 # the run's latest checkpoint
    python benchmarks/nashconv.py results/kuhn1/player/player-500000.pt --json
    python benchmarks/nashconv.py random --env openspiel:kuhn_poker   # the uniform policy (0.9167)

Policies that give probabilities: PPO-family checkpoints (``TorchActorPolicy``: softmax of the
masked logits), ``random`` (uniform over legal actions), and any policy with a method
``action_probabilities(obs, agent_index, mask) -> float [B, n_actions]``. Recurrent policies are
refused (their action depends on their memory, not only on the information state).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envs.openspiel import OBS_TENSOR_KEY, TensorReader, check_game, load_game, split_kwargs  # noqa: E402
from envs.registry import EnvError  # noqa: E402
from marl.checkpoint import CheckpointError  # noqa: E402
from marl.policy import Policy, PolicyError, RandomPolicy  # noqa: E402


class NashConvError(ValueError):
    """A policy or game this bridge cannot score (one line for the user)."""


def action_probabilities(policy: Policy, obs: np.ndarray, agent_index: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The policy's action distribution for a batch of rows.

    Args:
        policy: a PPO-family torch policy (``.actor``), a :class:`RandomPolicy`, or any policy with
            ``action_probabilities(obs, agent_index, mask)``.
        obs: float32 ``[B, *obs_shape]``.
        agent_index: int64 ``[B]`` (the player id for OpenSpiel seats).
        mask: float32 ``[B, n_actions]``, 1 = legal.

    Returns:
        float64 ``[B, n_actions]``, zero on illegal actions, rows summing to 1.

    Raises:
        NashConvError: the policy gives no probabilities, is recurrent, or has several action branches.
    """
    mask = np.asarray(mask, np.float64)
    if hasattr(policy, "action_probabilities"):
        probs = np.asarray(policy.action_probabilities(obs, agent_index, mask), np.float64)
    elif isinstance(policy, RandomPolicy):
        probs = mask.copy()
    elif hasattr(policy, "actor") and hasattr(policy.actor, "logits"):
        import torch
        import torch.nn.functional as F

        actor = policy.actor
        if getattr(actor, "lstm", None) is not None:
            raise NashConvError(f"{policy.name}: a recurrent policy acts on its memory, not on the information "
                                "state alone; NashConv needs a feed-forward policy")
        if len(actor.branches) != 1:
            raise NashConvError(f"{policy.name}: {len(actor.branches)} action branches; OpenSpiel games have one")
        with torch.inference_mode():
            o = torch.as_tensor(np.asarray(obs, np.float32)).reshape(len(agent_index), -1)
            ids = F.one_hot(torch.as_tensor(np.asarray(agent_index), dtype=torch.int64),
                            policy.spec.n_agents).float()[:, : actor.n_agents]
            logits, _ = actor(o, ids, torch.as_tensor(mask, dtype=torch.float32))
            probs = torch.softmax(logits.double(), -1).numpy()
    else:
        raise NashConvError(f"{getattr(policy, 'name', type(policy).__name__)}: gives no action probabilities "
                            "(NashConv needs the stochastic policy: a .pt checkpoint of mappo/ippo, or 'random')")
    probs = probs * mask
    total = probs.sum(1, keepdims=True)
    if (total <= 0).any():
        raise NashConvError("the policy gives probability 0 to every legal action of some information state")
    return probs / total


def policy_table(policy: Policy, env_id: str, env_kwargs: dict | None = None):
    """OpenSpiel ``TabularPolicy`` of ``policy`` over every information state of ``env_id``'s game.

    Returns:
        ``(game, TabularPolicy)``.

    Raises:
        EnvError: the game does not load or is refused (:func:`envs.openspiel.check_game`).
        NashConvError: a simultaneous-move game (no tabular information states here), or see
            :func:`action_probabilities`.
    """
    import pyspiel
    from open_spiel.python.policy import TabularPolicy

    params, kind = split_kwargs(env_id, env_kwargs)
    game = load_game(env_id, params)
    kind = check_game(env_id, game, kind)
    if game.get_type().dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
        raise NashConvError(f"env '{env_id}': NashConv here needs a sequential game (this one has simultaneous moves)")
    read = TensorReader(game, kind)
    table = TabularPolicy(game)
    by_player: dict[int, list[int]] = {}
    for i, state in enumerate(table.states):
        by_player.setdefault(state.current_player(), []).append(i)
    for player, rows in by_player.items():
        obs = np.stack([read(table.states[i], player) for i in rows])
        mask = table.legal_actions_mask[rows].astype(np.float32)
        table.action_probability_array[rows] = action_probabilities(policy, obs, np.full(len(rows), player, np.int64),
                                                                    mask)
    return game, table


def nash_conv(policy: Policy, env_id: str, env_kwargs: dict | None = None) -> float:
    """OpenSpiel's ``exploitability.nash_conv`` of ``policy`` in ``env_id`` (see the module docstring).

    Raises:
        EnvError, NashConvError: see :func:`policy_table`.
    """
    from open_spiel.python.algorithms import exploitability

    game, table = policy_table(policy, env_id, env_kwargs)
    return float(exploitability.nash_conv(game, table))


def uniform_nash_conv(env_id: str, env_kwargs: dict | None = None) -> float:
    """NashConv of the uniform-random policy (the reference the target is stated against)."""
    return nash_conv(RandomPolicy(None), env_id, env_kwargs)


def run_settings(path: Path) -> tuple[str | None, dict]:
    """``(env id, env_kwargs)`` from the ``configuration.yaml`` of the run that holds ``path`` (a run
    folder or a file up to three levels inside it), or ``(None, {})`` when there is none."""
    import yaml

    p = path.resolve()
    for folder in [p, *p.parents[:4]]:
        cfg = folder / "configuration.yaml"
        if cfg.is_file():
            data = yaml.safe_load(cfg.read_text()) or {}
            env = data.get("env_settings") or {}
            return env.get("env_path"), dict(env.get("env_kwargs") or {})
    return None, {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("policy", help="results/<run-id>, a .pt checkpoint or snapshot, or 'random'")
    ap.add_argument("--env", help="openspiel:<game> (default: the run's env_settings.env_path)")
    ap.add_argument("--env-kwargs", help="JSON game parameters and obs_tensor (default: the run's env_kwargs)")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args(argv)
    try:
        if args.policy == "random":
            policy, env_id, kwargs = RandomPolicy(None), args.env, {}
        else:
            from marl.inference import load_policy

            policy = load_policy(args.policy)
            env_id, kwargs = run_settings(Path(args.policy))
            env_id = args.env or env_id or getattr(policy, "env_id", None)
        if args.env_kwargs:
            kwargs = json.loads(args.env_kwargs)
        if not env_id or not str(env_id).startswith("openspiel:"):
            raise NashConvError(f"{args.policy}: needs an OpenSpiel env (--env openspiel:<game>), got {env_id!r}")
        value = nash_conv(policy, env_id, kwargs)
        uniform = uniform_nash_conv(env_id, kwargs)
    except (CheckpointError, PolicyError, EnvError, NashConvError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = {"policy": args.policy, "env": env_id, OBS_TENSOR_KEY: kwargs.get(OBS_TENSOR_KEY), "nash_conv": value,
           "uniform_nash_conv": uniform, "ratio": value / uniform}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.policy} on {env_id}: NashConv {value:.4f} (uniform policy {uniform:.4f}; "
              f"ratio {value / uniform:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
