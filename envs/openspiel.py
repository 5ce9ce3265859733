"""OpenSpiel games as PettingZoo AEC envs, on ``pyspiel`` directly (``--env openspiel:<game>``).

Why not ``shimmy.OpenSpielCompatibilityV0`` (2.0.1): its episodes are wrong in the games that
matter for imperfect-information play. It counts chance nodes in the game length and truncates
at ``max_game_length`` (Kuhn poker ends after one move with returns 0/0; Leduc poker is cut
mid-game with non-zero-sum returns), it reports ``state.rewards()`` of the last transition only,
it reloads the game without its parameters on every reset, it reseeds chance randomly on every
``reset(seed=None)``, and simultaneous-move games (goofspiel, oshi_zumo) never reach a reward
(the episodes run until the caller gives up). See ``docs/openspiel.md``.

Semantics of :class:`OpenSpielEnv` (the contract ``envs.adapter.ArrayEnv`` relies on):

* Agents ``player_0 .. player_{n-1}`` (OpenSpiel player ids), all in behavior ``player``.
* **Chance nodes** are resolved inside the env, by sampling ``state.chance_outcomes()`` with the
  env's own generator (``numpy.random.default_rng(seed)`` at ``reset(seed)``; ``reset()`` without
  a seed continues the same stream, so a seeded run stays reproducible across episodes).
  No agent ever sees a chance node.
* **Sequential nodes**: ``agent_selection`` is ``state.current_player()``.
* **Simultaneous nodes**: the players with legal actions are selected one after another in id
  order; each one's action is held back until all have chosen, then applied together with
  ``state.apply_actions``. A player choosing later does not see the earlier choices: the state
  (and so every observation) changes only when the joint action is applied.
* **Rewards**: after every step, each player's reward is the change of ``state.returns()`` (the
  total so far, OpenSpiel's ``State::Returns``) since the previous step, so the rewards of an
  episode sum exactly to the game's returns, for terminal-reward and intermediate-reward games
  alike, and both players of a two-player game are credited in the step that ends it.
* **Termination**: every agent terminates together when ``state.is_terminal()``. OpenSpiel games
  are finite (``max_game_length``), so there is no truncation here.
* **Observation**: the game's observation tensor (``obs_tensor: observation``, the default when the
  game offers it) or its information-state tensor (``obs_tensor: information_state``: the player's
  whole history, perfect recall), float32, reshaped to the game's tensor shape (Connect Four
  ``[3, 6, 7]``, CHW planes). ``info["action_mask"]`` (int8, 1 = legal) is the acting player's legal
  actions; the other players' masks are all zero.
* ``game_state``: the live ``pyspiel.State`` (what :class:`marl.policy.MCTSPolicy` searches).

Errors are :class:`envs.errors.EnvError` (also ``envs.registry.EnvError``) with one line naming the env id.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv

from envs.errors import EnvError

OBS_TENSOR_KEY = "obs_tensor"
"""Our key in ``env_settings.env_kwargs`` (not a game parameter): ``observation`` | ``information_state``."""

OBS_TENSOR_KINDS = ("observation", "information_state")


def _error(msg: str) -> EnvError:
    return EnvError(msg)


def load_game(env_id: str, kwargs: dict[str, Any] | None = None):
    """Load the ``pyspiel.Game`` of ``openspiel:<game>`` with its parameters.

    Args:
        env_id: ``openspiel:<game>`` (``<game>`` may carry parameters, ``leduc_poker(players=3)``).
        kwargs: game parameters (``env_settings.env_kwargs``) without :data:`OBS_TENSOR_KEY`.

    Returns:
        ``pyspiel.Game``.

    Raises:
        EnvError: unknown game or bad parameters.
    """
    import pyspiel

    name = env_id.split(":", 1)[1]
    base = name.split("(", 1)[0].strip()
    known = pyspiel.registered_names()
    if base not in known:  # checked here: pyspiel prints its whole game list to stderr before raising
        import difflib

        close = difflib.get_close_matches(base, known, n=3, cutoff=0.6)
        raise _error(f"env '{env_id}': Unknown game '{base}' in OpenSpiel"
                     + (f"; did you mean {', '.join(close)}" if close else "")
                     + " (python -c 'import pyspiel; print(pyspiel.registered_names())' lists them)")
    spec = next((gt.parameter_specification for gt in pyspiel.registered_games() if gt.short_name == base), {})
    unknown = sorted(set(kwargs or {}) - set(spec))
    if unknown:
        raise _error(f"env '{env_id}': env_kwargs {', '.join(unknown)}: not parameters of {base} (its parameters: "
                     f"{', '.join(sorted(spec)) or 'none'}; ours: {OBS_TENSOR_KEY})")
    for key, value in (kwargs or {}).items():  # pyspiel prints its own message to stderr on a wrong type
        want = type(spec[key])
        ok = (isinstance(value, want) and not (want is int and isinstance(value, bool))) or \
             (want is float and isinstance(value, int) and not isinstance(value, bool))
        if want in (bool, int, float, str) and not ok:
            raise _error(f"env '{env_id}': env_kwargs.{key}: {base} takes a {want.__name__} "
                         f"(default {spec[key]!r}), got {value!r}")
    try:
        return pyspiel.load_game(name, dict(kwargs)) if kwargs else pyspiel.load_game(name)
    except (pyspiel.SpielError, RuntimeError, TypeError) as exc:
        text = str(exc).split("OpenSpiel exception:")[0].strip() or str(exc)
        raise _error(f"env '{env_id}': OpenSpiel cannot load game '{name}' with {dict(kwargs or {})}: "
                     f"{text.splitlines()[0] if text else type(exc).__name__}") from None


def check_game(env_id: str, game, obs_tensor: str | None = None) -> str:
    """The start-up check: refuse, in one line, the games this adapter cannot play correctly.

    Accepted: sequential and simultaneous-move games (``Dynamics.SEQUENTIAL`` / ``SIMULTANEOUS``) of
    any number of players, deterministic or with chance nodes, perfect or imperfect information,
    any utility, terminal or intermediate rewards, provided the game offers a numeric observation
    (observation tensor or information-state tensor).

    Refused: mean-field games (no per-player episodes); games with only string observations (a
    policy needs a tensor); ``obs_tensor`` naming a tensor the game does not offer, or an unknown
    kind; games without players.

    Args:
        env_id: for messages.
        game: ``pyspiel.Game``.
        obs_tensor: ``observation`` | ``information_state`` | None (= the observation tensor when the
            game offers it, else the information-state tensor).

    Returns:
        the tensor kind to use (``observation`` or ``information_state``).

    Raises:
        EnvError: see above.
    """
    import pyspiel

    gt = game.get_type()
    if gt.dynamics not in (pyspiel.GameType.Dynamics.SEQUENTIAL, pyspiel.GameType.Dynamics.SIMULTANEOUS):
        raise _error(f"env '{env_id}': {gt.short_name} is a {str(gt.dynamics).split('.')[-1].lower().replace('_', '-')} "
                     "game; only sequential and simultaneous-move OpenSpiel games can be played (mean-field games "
                     "have no per-player episodes)")
    if game.num_players() < 1:
        raise _error(f"env '{env_id}': {gt.short_name} has no players")
    offered = [k for k, ok in (("observation", gt.provides_observation_tensor),
                               ("information_state", gt.provides_information_state_tensor)) if ok]
    if not offered:
        raise _error(f"env '{env_id}': {gt.short_name} offers only string observations (no observation or "
                     "information-state tensor), and a policy needs a tensor; choose another game")
    if obs_tensor is None:
        return offered[0]
    if obs_tensor not in OBS_TENSOR_KINDS:
        raise _error(f"env '{env_id}': env_kwargs.{OBS_TENSOR_KEY}: {obs_tensor!r} is not one of "
                     f"{', '.join(OBS_TENSOR_KINDS)}")
    if obs_tensor not in offered:
        raise _error(f"env '{env_id}': env_kwargs.{OBS_TENSOR_KEY}: {gt.short_name} has no {obs_tensor.replace('_', '-')} "
                     f"tensor (it offers: {', '.join(offered)})")
    return obs_tensor


class TensorReader:
    """``reader(state, player) -> float32 [*shape]``: the observation (or information-state) tensor
    of ``player`` in ``state``, exactly ``state.observation_tensor(player)`` /
    ``state.information_state_tensor(player)`` reshaped to the game's tensor shape.

    It reads through OpenSpiel's buffer-filling observer (``open_spiel.python.observation``; about
    10x faster than the list-returning methods on Connect Four) after checking, on the game's first
    decision state, that the observer gives the same numbers; otherwise it uses the methods.

    Args:
        game: ``pyspiel.Game``.
        kind: ``observation`` or ``information_state``.
    """

    def __init__(self, game, kind: str):
        self.kind = kind
        self.shape = tuple(int(d) for d in (game.observation_tensor_shape() if kind == "observation"
                                            else game.information_state_tensor_shape()))
        self._observer = None
        try:
            import pyspiel
            from open_spiel.python.observation import INFO_STATE_OBS_TYPE, make_observation

            obs = make_observation(game, None if kind == "observation" else INFO_STATE_OBS_TYPE)
            state, rng = game.new_initial_state(), np.random.default_rng(0)
            for _ in range(10_000):  # a sampled deal (always taking the first outcome can loop forever)
                if not state.is_chance_node():
                    break
                actions, probs = zip(*state.chance_outcomes())
                state.apply_action(actions[rng.choice(len(actions), p=np.asarray(probs) / np.sum(probs))])
            if obs.tensor is not None and not state.is_terminal() and not state.is_chance_node():
                players = range(game.num_players())
                if all(np.array_equal(self._by_observer(obs, state, p), self._by_method(state, p)) for p in players):
                    self._observer = obs
        except Exception:  # noqa: BLE001 - no usable observer: the methods are the reference anyway
            self._observer = None

    def _by_method(self, state, player: int) -> np.ndarray:
        t = state.observation_tensor(player) if self.kind == "observation" else state.information_state_tensor(player)
        return np.asarray(t, np.float32).reshape(self.shape)

    def _by_observer(self, obs, state, player: int) -> np.ndarray:
        obs.set_from(state, player)
        return obs.tensor.reshape(self.shape).copy()

    def __call__(self, state, player: int) -> np.ndarray:
        if self._observer is not None:
            return self._by_observer(self._observer, state, player)
        return self._by_method(state, player)


def split_kwargs(env_id: str, kwargs: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
    """``env_settings.env_kwargs`` -> (game parameters, ``obs_tensor`` or None).

    Raises:
        EnvError: ``obs_tensor`` is not a string.
    """
    params = dict(kwargs or {})
    kind = params.pop(OBS_TENSOR_KEY, None)
    if kind is not None and not isinstance(kind, str):
        raise _error(f"env '{env_id}': env_kwargs.{OBS_TENSOR_KEY} must be 'observation' or 'information_state', "
                     f"got {kind!r}")
    return params, kind


class OpenSpielEnv(AECEnv):
    """An OpenSpiel game as a PettingZoo ``AECEnv`` (semantics: see the module docstring).

    Args:
        env_id: ``openspiel:<game>``.
        kwargs: ``env_settings.env_kwargs``: the game's parameters, plus our ``obs_tensor`` key.
        render_mode: None or ``"ansi"`` (:meth:`render` returns the state's text).

    Raises:
        EnvError: unknown game, bad parameters, or a game the start-up check refuses
            (:func:`check_game`).
    """

    metadata = {"name": "openspiel", "render_modes": ["ansi"], "is_parallelizable": False}

    def __init__(self, env_id: str, kwargs: dict[str, Any] | None = None, render_mode: str | None = None):
        super().__init__()
        params, kind = split_kwargs(env_id, kwargs)
        self.env_id = env_id
        self.game = load_game(env_id, params)
        self.obs_kind = check_game(env_id, self.game, kind)
        try:
            self.read_tensor = TensorReader(self.game, self.obs_kind)
        except Exception as exc:  # noqa: BLE001 - pyspiel.SpielError: a tensor the game declares but lacks
            raise _error(f"env '{env_id}': {self.game.get_type().short_name} declares an {self.obs_kind.replace('_', '-')} "
                         f"tensor but pyspiel cannot give it ({str(exc).splitlines()[0]}); choose another game") from None
        gt = self.game.get_type()
        self.zero_sum = str(gt.utility).split(".")[-1] in ("ZERO_SUM", "CONSTANT_SUM")
        self.n_players = self.game.num_players()
        self.n_actions = self.game.num_distinct_actions()
        self.possible_agents = [f"player_{i}" for i in range(self.n_players)]
        self._ids = {a: i for i, a in enumerate(self.possible_agents)}
        box = spaces.Box(-np.inf, np.inf, self.read_tensor.shape, np.float32)
        self.observation_spaces = {a: box for a in self.possible_agents}
        self.action_spaces = {a: spaces.Discrete(self.n_actions) for a in self.possible_agents}
        self.render_mode = render_mode
        self._rng: np.random.Generator | None = None
        self.game_state = None
        self._zero_mask = np.zeros(self.n_actions, np.int8)
        self._zero_mask.flags.writeable = False  # shared by every non-acting agent's info

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    # ------------------------------------------------------------------------------- episode
    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        """Start a new game; ``seed`` reseeds chance sampling (None continues the current stream)."""
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        self.game_state = self.game.new_initial_state()
        self.agents = self.possible_agents[:]
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}
        self._pending: dict[int, int] = {}
        self._returns = np.zeros(self.n_players, np.float64)
        self._last_obs: dict[str, np.ndarray] = {}
        self._resolve_chance()
        self._after_transition()

    def _resolve_chance(self) -> None:
        import pyspiel

        state = self.game_state
        while state.is_chance_node():
            try:
                outcomes = state.chance_outcomes()
            except pyspiel.SpielError as exc:
                raise _error(f"env '{self.env_id}': chance node without explicit outcomes ({str(exc).splitlines()[0]}); "
                             "this game samples chance internally and cannot be seeded here") from None
            u = self._rng.random() * sum(p for _, p in outcomes)  # inverse CDF over the listed outcomes
            pick, acc = outcomes[-1][0], 0.0
            for action, p in outcomes:
                acc += p
                if u < acc:
                    pick = action
                    break
            state.apply_action(pick)

    def _after_transition(self) -> None:
        """Credit the change of the returns, then pick the next agent and write the masks."""
        state = self.game_state
        returns = np.asarray(state.returns(), np.float64)
        delta = returns - self._returns
        self._returns = returns
        for a in self.agents:
            self.rewards[a] = float(delta[self._ids[a]])
        if state.is_terminal():
            for a in self.agents:
                self.terminations[a] = True
                self.infos[a] = {"action_mask": self._zero_mask}
            self.agent_selection = self.agents[0]
            return
        self._select()

    def _legal_mask(self, player: int) -> np.ndarray:
        mask = np.zeros(self.n_actions, np.int8)
        mask[self.game_state.legal_actions(player)] = 1
        return mask

    def _select(self) -> None:
        """``agent_selection`` and every agent's ``info["action_mask"]`` for the current decision."""
        state = self.game_state
        for a in self.agents:
            self.infos[a] = {"action_mask": self._zero_mask}
        if state.is_simultaneous_node():
            for p in range(self.n_players):
                if p in self._pending:
                    continue
                mask = self._legal_mask(p)
                if mask.any():
                    agent = self.possible_agents[p]
                    self.infos[agent] = {"action_mask": mask}
                    self.agent_selection = agent
                    return
            raise _error(f"env '{self.env_id}': simultaneous node where no player has a legal action")
        p = state.current_player()
        agent = self.possible_agents[p]
        self.infos[agent] = {"action_mask": self._legal_mask(p)}
        self.agent_selection = agent

    def step(self, action) -> None:
        """Play ``action`` (an int) for ``agent_selection``; ``None`` for an agent that is done.

        Raises:
            EnvError: an action that is not legal for that player now.
        """
        agent = self.agent_selection
        if self.terminations.get(agent) or self.truncations.get(agent):
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        p = self._ids[agent]
        mask = self.infos[agent]["action_mask"]
        a = int(np.asarray(action).reshape(-1)[0]) if action is not None else -1
        if not (0 <= a < self.n_actions and mask[a]):
            raise _error(f"env '{self.env_id}': {agent} played action {action}, which is not legal now "
                         f"(legal: {np.flatnonzero(mask).tolist()})")
        state = self.game_state
        if state.is_simultaneous_node():
            self._pending[p] = a
            waiting = [q for q in range(self.n_players) if q not in self._pending and state.legal_actions(q)]
            if waiting:
                for ag in self.agents:
                    self.rewards[ag] = 0.0
                self._select()
                self._accumulate_rewards()
                return
            import pyspiel

            joint = [self._pending.get(q, pyspiel.INVALID_ACTION) for q in range(self.n_players)]
            self._pending = {}
            state.apply_actions(joint)
        else:
            state.apply_action(a)
        self._resolve_chance()
        self._after_transition()
        self._accumulate_rewards()

    def observe(self, agent: str) -> np.ndarray:
        """float32 ``[*tensor_shape]``: ``agent``'s tensor in the current state (the last one it had
        when the game's terminal state offers none)."""
        try:
            obs = self.read_tensor(self.game_state, self._ids[agent])
        except Exception:  # noqa: BLE001 - some games define no tensor at terminal states
            obs = self._last_obs.get(agent, np.zeros(self.read_tensor.shape, np.float32))
        self._last_obs[agent] = obs
        return obs

    def state(self) -> np.ndarray:
        """No global state tensor: OpenSpiel games have none (the critic uses the observations)."""
        raise NotImplementedError

    def render(self):
        """The state's text (``render_mode="ansi"``)."""
        return None if self.render_mode is None else str(self.game_state)

    def close(self) -> None:
        """Nothing to release (the game lives in this process)."""


def make_openspiel_env(env_id: str, kwargs: dict[str, Any] | None = None) -> OpenSpielEnv:
    """``openspiel:<game>`` -> :class:`OpenSpielEnv` (the registry calls this).

    Raises:
        EnvError: see :class:`OpenSpielEnv`.
    """
    return OpenSpielEnv(env_id, kwargs)


def is_zero_sum(env_id: str, kwargs: dict[str, Any] | None = None) -> bool:
    """True when ``openspiel:<game>``'s utility is zero-sum or constant-sum (OpenSpiel's game type).

    Raises:
        EnvError: unknown game or bad parameters.
    """
    import pyspiel

    params, _ = split_kwargs(env_id, kwargs)
    return load_game(env_id, params).get_type().utility in (pyspiel.GameType.Utility.ZERO_SUM,
                                                            pyspiel.GameType.Utility.CONSTANT_SUM)
