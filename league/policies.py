"""League players: a registered player's ``policy`` spec becomes a :class:`marl.policy.Policy`.

A registered player's ``policy`` is either a file path or a bot spec:

* ``bot:random``: uniform over the legal actions (:class:`marl.policy.RandomPolicy`);
* ``bot:mcts?simulations=100&uct_c=2&rollouts=1``: OpenSpiel's ``MCTSBot`` with a
  ``RandomRolloutEvaluator`` (:class:`marl.policy.MCTSPolicy`); needs an ``openspiel:`` env;
* ``*.onnx``: a brain in the ML-Agents contract (``docs/unity_contract.md``), run by
  :class:`marl.export.onnx_policy.OnnxPolicy` (agent slot files, ``recurrent_in`` carried);
* ``*.pt``: a trainer checkpoint, loaded by its algorithm's policy loader (:func:`marl.inference.load_policy`)
  with ``weights_only=True`` (tensors, arrays and plain containers only): a league may be shared and
  a pickled file could run code, so the league never unpickles arbitrary objects.

A file player comes with its sibling files (:func:`policy_files`): the per-slot brains
``<stem>_agent<i>.onnx`` of a shared policy with an agent-id input, and for a ``.pt`` its exported
``<stem>.onnx`` (and that file's slot brains), which ``league export`` ships.

Matches play them through marl's one play loop (:func:`marl.play.play_episodes`); the league
never reimplements acting.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from league.errors import PolicyFileError
from marl.policy import Policy, PolicyError, is_bot, make_bot

POLICY_SUFFIXES = (".onnx", ".pt")


def file_sha256(path: str) -> str:
    """SHA-256 hex digest of a file (read in 1 MiB chunks). Raises PolicyFileError when unreadable."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise PolicyFileError(f"policy file '{path}': cannot read ({exc.strerror})") from None
    return h.hexdigest()


def validate_policy(policy: str) -> None:
    """Check a policy spec before registration (bot spec syntax, file exists with a known suffix).

    Raises:
        PolicyFileError: unknown bot, bad bot argument, missing file or unsupported suffix.
    """
    if policy.startswith("bot:"):
        make_player(policy, None, verify=False)
        return
    if not os.path.isfile(policy):
        raise PolicyFileError(f"policy file '{policy}' does not exist")
    if not policy.endswith(POLICY_SUFFIXES):
        raise PolicyFileError(f"policy file '{policy}': expected a .onnx or .pt file, or a bot spec (bot:random, "
                              "bot:mcts?simulations=N)")


def policy_files(path: str) -> list[str]:
    """The files that make up a file player: ``path`` first, then its existing siblings.

    Siblings: for ``<stem>.onnx`` the slot brains ``<stem>_agent1.onnx``, ``<stem>_agent2.onnx``, ... (up
    to the first missing index, as :class:`marl.export.onnx_policy.OnnxPolicy` reads them); for
    ``<stem>.pt`` the exported ``<stem>.onnx`` and its slot brains.
    """
    stem, ext = os.path.splitext(path)
    out = [path]
    onnx = path if ext == ".onnx" else stem + ".onnx"
    if onnx != path:
        if not os.path.isfile(onnx):
            return out
        out.append(onnx)
    i = 1
    while os.path.isfile(f"{stem}_agent{i}.onnx"):
        out.append(f"{stem}_agent{i}.onnx")
        i += 1
    return out


def make_player(policy: str, policy_hash: str | None, *, verify: bool = True) -> Policy:
    """Build a player's :class:`marl.policy.Policy` from its stored policy spec.

    ``.pt`` files are loaded with ``torch.load(weights_only=True)`` (see module docstring).

    Args:
        policy: bot spec or file path (see module docstring).
        policy_hash: sha256 recorded at registration; checked when ``verify`` (a changed file is an error).

    Raises:
        PolicyFileError: unknown bot / bad arguments, missing or changed file, unloadable model, or a
            ``.pt`` holding Python objects a weights-only load refuses.
    """
    if policy.startswith("bot:"):
        try:
            return make_bot(policy)
        except PolicyError as exc:
            raise PolicyFileError(str(exc)) from None
    if is_bot(policy):
        raise PolicyFileError(f"policy '{policy}': league bots are written bot:random or bot:mcts?simulations=N")
    if not os.path.isfile(policy):
        raise PolicyFileError(f"policy file '{policy}' does not exist")
    if not policy.endswith(POLICY_SUFFIXES):
        raise PolicyFileError(f"policy file '{policy}': expected a .onnx or .pt file")
    if verify and policy_hash is not None and file_sha256(policy) != policy_hash:
        raise PolicyFileError(f"policy file '{policy}' changed since it was registered (sha256 differs); "
                              "register it again under a new name")
    from marl.checkpoint import CheckpointError  # imports torch: only when a file player is loaded
    from marl.inference import load_policy

    try:
        return load_policy(policy, weights_only=True)
    except (CheckpointError, PolicyError) as exc:
        msg = str(exc).splitlines()[0][:300]
        if "Weights only load failed" in msg or "weights_only" in msg:
            msg = (f"policy file '{policy}': refused: it holds Python objects other than tensors and arrays, which "
                   "a weights-only load does not unpickle (a pickle can run code); re-save it from a trusted copy "
                   "with marl-learn, or export it to ONNX")
        elif policy.endswith(".onnx") and "cannot load ONNX" in msg:
            msg = f"policy file '{policy}': not a loadable ONNX model ({msg.split('(', 1)[-1].rstrip(')')})"
        elif not msg.startswith("policy file"):
            msg = f"policy file '{policy}': cannot load ({msg})"
        raise PolicyFileError(msg) from None


@dataclass(frozen=True)
class PlayerSpec:
    """What a match worker needs to build a player (picklable): registered name, policy spec and hash."""

    name: str
    policy: str
    policy_hash: str | None = None


@dataclass
class PlayerCache:
    """Per-process cache of loaded players (ONNX sessions and torch networks are reused across matches)."""

    players: dict[tuple[str, str | None], Policy] = field(default_factory=dict)

    def get(self, spec: PlayerSpec) -> Policy:
        """The loaded player for ``spec`` (loads on first use)."""
        key = (spec.policy, spec.policy_hash)
        p = self.players.get(key)
        if p is None:
            p = make_player(spec.policy, spec.policy_hash)
            self.players[key] = p
        return p
