"""QMIX and VDN: recurrent agent Q-networks, value mixers, episode replay and the TD update.

References:
    Rashid et al. 2018, "QMIX: Monotonic Value Function Factorisation for Deep Multi-Agent
    Reinforcement Learning" (ICML); Sunehag et al. 2018, "Value-Decomposition Networks for
    Cooperative Multi-Agent Learning" (AAMAS); reference code oxwhirl/pymarl
    (``modules/agents/rnn_agent.py``, ``modules/mixers/qmix.py``, ``learners/q_learner.py``,
    ``components/action_selectors.py``) and its fine-tuned fork hijkzzz/pymarl2 (Adam, TD(λ),
    ``utils/rl_utils.py::build_td_lambda_targets``).

Choices, each as pymarl unless noted:

* one agent network per behavior shared by its agents: ``Linear -> ReLU -> GRU -> Linear`` to one
  Q-value per action; its input is the observation, the agent's previous action (one-hot, zeros at
  the start of an episode) and the agent id (one-hot);
* QMIX mixer: ``Q_tot = w2(s)ᵀ ELU(W1(s)ᵀ q + b1(s)) + V(s)`` where ``W1``, ``w2`` are the absolute
  values of hypernetwork outputs (so ``∂Q_tot/∂q_a ≥ 0``), ``b1`` is linear in ``s`` and ``V`` is a
  two-layer net of ``s``; VDN: ``Q_tot = Σ_a q_a``;
* targets from a target copy of agent network and mixer, double-Q (the online network picks the
  next action, the target network values it), optional TD(λ) (pymarl2), hard target copies every
  ``target_update_interval`` updates or Polyak averaging with ``target_update_tau``;
* ε-greedy with ε linear from ``epsilon_start`` to ``epsilon_finish`` over ``epsilon_anneal_steps``
  env steps; both the random and the greedy choice respect the action mask;
* whole episodes are stored (:mod:`marl.replay`), padded and masked: an agent that is not acting at
  a step (dead, waiting for its turn) contributes 0 to the mixer there and is not trained on;
  its observation is zeroed, as pymarl does for dead units;
* time-limit truncation bootstraps from ``Q_tot`` of the final observations (``final_obs``,
  ``final_state``); termination does not bootstrap. The bootstrap row has no action mask (the env
  has already reset), so every action counts as allowed there;
* the team reward of a step is the mean (``team_reward: mean``) or sum of the rewards of the
  behavior's agents that were in the episode, scaled by ``reward_signals.extrinsic.strength``;
* optional reward standardisation (``standardise_rewards``, epymarl's option, Papoudakis et al.
  2021): the sampled team rewards are shifted and scaled by a running mean/std of all sampled
  filled steps before the targets are built (no clipping);
* a gradient update of ``batch_size`` episodes follows every ``update_interval`` finished episodes,
  MSE TD loss over the filled steps, gradient-norm clipping.

Limits: each behavior is mixed on its own (agents of different behaviors are not mixed together);
actions must be one discrete branch. Episodes longer than ``max_episode_length`` are stored as
segments that bootstrap into the next one; the GRU state and the previous-action input restart at
each segment, in acting as in training.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from envs.spec import BehaviorSpec, EnvSpec
from marl.config import BehaviorSettings, ConfigError, QMIXHyperparameters, RunConfig
from marl.algos.base import Trainer
from marl.policy import Policy
from marl.normalization import RunningMeanStd
from marl.replay import EpisodeRecorder, EpisodeReplayBuffer

NEG = -1e9  # logit for masked actions (finite, so 0 * NEG stays 0 in padded rows)


# ------------------------------------------------------------------------------------ networks
class AgentQNetwork(nn.Module):
    """pymarl's ``RNNAgent``: ``fc1 -> ReLU -> GRU -> fc2``, one Q-value per action.

    Args:
        input_size: observation + previous-action one-hot + agent-id one-hot sizes.
        n_actions: actions of the (single) discrete branch.
        hidden: GRU hidden size (``rnn_hidden_dim``).

    ``forward(x, h)``: ``x`` float32 ``[N, T, input_size]``, ``h`` float32 ``[N, hidden]`` or None
    (zeros) -> ``(q [N, T, n_actions], h_T [N, hidden])``.
    """

    def __init__(self, input_size: int, n_actions: int, hidden: int):
        super().__init__()
        self.input_size, self.n_actions, self.hidden = input_size, n_actions, hidden
        self.fc1 = nn.Linear(input_size, hidden)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True)
        self.fc2 = nn.Linear(hidden, n_actions)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        y, h_n = self.rnn(F.relu(self.fc1(x)), None if h is None else h.unsqueeze(0).contiguous())
        return self.fc2(y), h_n.squeeze(0)


class QMixer(nn.Module):
    """QMIX's monotonic mixer conditioned on the global state (pymarl ``QMixer``).

    ``Q_tot = |w_final(s)|ᵀ ELU(qᵀ|W1(s)| + b1(s)) + V(s)``. With ``hypernet_layers == 1`` the
    hypernetworks ``W1``, ``w_final`` are linear in ``s``; with 2 they are
    ``Linear(S, hypernet_embed) -> ReLU -> Linear``. ``b1`` is linear, ``V`` is
    ``Linear(S, embed) -> ReLU -> Linear(embed, 1)``.

    Args:
        n_agents: ``A``; state_size: ``S``; embed_dim: mixing hidden size; hypernet_layers: 1 or 2;
        hypernet_embed: hidden size of 2-layer hypernetworks.

    ``forward(qs, states)``: ``qs`` float32 ``[..., A]``, ``states`` ``[..., S]`` -> ``Q_tot [...]``.
    """

    def __init__(self, n_agents: int, state_size: int, embed_dim: int = 32, hypernet_layers: int = 2,
                 hypernet_embed: int = 64):
        super().__init__()
        self.n_agents, self.embed = n_agents, embed_dim

        def hyper(out: int) -> nn.Module:
            if hypernet_layers == 1:
                return nn.Linear(state_size, out)
            return nn.Sequential(nn.Linear(state_size, hypernet_embed), nn.ReLU(), nn.Linear(hypernet_embed, out))

        self.hyper_w_1 = hyper(embed_dim * n_agents)
        self.hyper_w_final = hyper(embed_dim)
        self.hyper_b_1 = nn.Linear(state_size, embed_dim)
        self.V = nn.Sequential(nn.Linear(state_size, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def forward(self, qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        lead = qs.shape[:-1]
        q = qs.reshape(-1, 1, self.n_agents)
        s = states.reshape(q.shape[0], -1)
        w1 = torch.abs(self.hyper_w_1(s)).view(-1, self.n_agents, self.embed)
        b1 = self.hyper_b_1(s).view(-1, 1, self.embed)
        hidden = F.elu(torch.bmm(q, w1) + b1)
        w_final = torch.abs(self.hyper_w_final(s)).view(-1, self.embed, 1)
        v = self.V(s).view(-1, 1, 1)
        return (torch.bmm(hidden, w_final) + v).view(lead)


class VDNMixer(nn.Module):
    """VDN: ``Q_tot = Σ_a q_a`` (Sunehag et al. 2018); ``states`` is ignored."""

    def forward(self, qs: torch.Tensor, states: torch.Tensor | None = None) -> torch.Tensor:
        return qs.sum(-1)


# ------------------------------------------------------------------------------------ pieces
def td_lambda_targets(rewards: torch.Tensor, terminated: torch.Tensor, filled: torch.Tensor, next_q: torch.Tensor,
                      gamma: float, lam: float) -> torch.Tensor:
    """λ-returns with bootstrapping from a target ``Q_tot`` (Watkins-free, as pymarl2's TD(λ)).

    ``G_t = r_t + γ (1 − d_t) [(1 − λ) Q_{t+1} + λ G_{t+1}]``, where ``G_{t+1}`` is replaced by
    ``Q_{t+1}`` after the last filled step of an episode (so a truncated episode bootstraps from
    its final state). ``λ = 0`` gives one-step targets ``r_t + γ (1 − d_t) Q_{t+1}``. Unlike
    pymarl2's ``build_td_lambda_targets`` this stays correct for padded episodes that end by
    truncation.

    Args:
        rewards, terminated, filled: float32 ``[B, T]`` (``terminated`` 1 = no bootstrap after step
            ``t``; ``filled`` 1 = real transition).
        next_q: float32 ``[B, T]``: target ``Q_tot`` of the state after step ``t``.
        gamma, lam: discount and λ.

    Returns:
        float32 ``[B, T]`` targets, 0 where not filled.
    """
    T = rewards.shape[1]
    out = torch.zeros_like(rewards)
    g_next = next_q[:, -1]
    for t in range(T - 1, -1, -1):
        cont = filled[:, t + 1] if t + 1 < T else torch.zeros_like(filled[:, t])
        tail = torch.where(cont > 0, g_next, next_q[:, t])
        g = rewards[:, t] + gamma * (1.0 - terminated[:, t]) * ((1.0 - lam) * next_q[:, t] + lam * tail)
        out[:, t] = g * filled[:, t]
        g_next = g
    return out


def epsilon_greedy(q: torch.Tensor, mask: torch.Tensor | None, epsilon: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """pymarl's ``EpsilonGreedyActionSelector``: with probability ``epsilon`` a uniformly random
    *allowed* action, else the allowed action with the highest Q.

    Args:
        q: float32 ``[N, n_actions]``.
        mask: float32 ``[N, n_actions]`` 1 = allowed, or None (all allowed). A row with no allowed
            action is treated as all allowed.
        epsilon: exploration probability in ``[0, 1]``.

    Returns:
        int64 ``[N]`` actions, never masked ones.
    """
    if mask is None:
        mask = torch.ones_like(q)
    mask = torch.where(mask.sum(-1, keepdim=True) > 0, mask, torch.ones_like(mask))
    greedy = q.masked_fill(mask < 0.5, float("-inf")).argmax(-1)
    if epsilon <= 0.0:
        return greedy
    rand = torch.multinomial(mask, 1, generator=generator).squeeze(-1)
    pick = torch.rand(q.shape[0], generator=generator, device=q.device) < epsilon
    return torch.where(pick, rand, greedy)


def epsilon_at(hp: QMIXHyperparameters, step: int) -> float:
    """ε after ``step`` env steps: linear from ``epsilon_start`` to ``epsilon_finish`` (pymarl's
    ``DecayThenFlatSchedule``, linear)."""
    if hp.epsilon_anneal_steps <= 0:
        return hp.epsilon_finish
    frac = min(step / hp.epsilon_anneal_steps, 1.0)
    return hp.epsilon_start - (hp.epsilon_start - hp.epsilon_finish) * frac


def agent_inputs(obs: torch.Tensor, last_action: torch.Tensor | None, agent_ids: torch.Tensor | None) -> torch.Tensor:
    """Concatenate ``obs [..., A, O]``, ``last_action [..., A, n]`` and ``agent_ids [A, A]`` (broadcast)."""
    parts = [obs]
    if last_action is not None:
        parts.append(last_action)
    if agent_ids is not None:
        parts.append(agent_ids.expand(*obs.shape[:-1], agent_ids.shape[-1]))
    return torch.cat(parts, -1)


# ------------------------------------------------------------------------------------ learner
class QLearner:
    """One behavior's agent network, mixer, targets, optimiser and episode replay (learning only;
    acting and recording whole episodes is :class:`QCollector`'s).

    Args:
        spec: the behavior (one discrete action branch).
        state_size: global state size (mixer input).
        settings: the behavior's YAML settings (``hyperparameters`` validated as
            :class:`marl.config.QMIXHyperparameters`).
        n_envs: env copies ``E``.
        device: torch device.

    Raises:
        ConfigError: the behavior's actions are not a single discrete branch.
    """

    def __init__(self, spec: BehaviorSpec, state_size: int, settings: BehaviorSettings, n_envs: int,
                 device: torch.device):
        act = spec.action
        if len(act.discrete_branches) != 1 or act.continuous_size:
            raise ConfigError(f"behaviors.{spec.name}.trainer_type: {settings.trainer_type} needs one discrete action "
                              f"branch, but behavior '{spec.name}' has discrete branches {list(act.discrete_branches)} "
                              f"and {act.continuous_size} continuous actions; use mappo/ippo")
        if settings.network_settings.memory is not None:
            raise ConfigError(f"behaviors.{spec.name}.network_settings.memory: {settings.trainer_type}'s agent network "
                              "is recurrent already (a GRU); set hyperparameters.rnn_hidden_dim instead and remove memory")
        self.spec, self.settings, self.device = spec, settings, device
        self.hp: QMIXHyperparameters = settings.hp
        hp = self.hp
        self.gamma = hp.gamma if hp.gamma is not None else settings.reward_signals.extrinsic.gamma
        self.strength = settings.reward_signals.extrinsic.strength
        self.A, self.n_actions, self.E = spec.n_agents, act.discrete_branches[0], n_envs
        self.O, self.S = spec.obs_size, state_size
        self.input_size = self.O + (self.n_actions if hp.obs_last_action else 0) + (self.A if hp.obs_agent_id else 0)
        self.agent = AgentQNetwork(self.input_size, self.n_actions, hp.rnn_hidden_dim).to(device)
        if settings.trainer_type == "qmix":
            self.mixer: nn.Module = QMixer(self.A, state_size, hp.mixing_embed_dim, hp.hypernet_layers,
                                           hp.hypernet_embed).to(device)
        else:
            self.mixer = VDNMixer()
        self.target_agent = copy.deepcopy(self.agent)
        self.target_mixer = copy.deepcopy(self.mixer)
        for p in [*self.target_agent.parameters(), *self.target_mixer.parameters()]:
            p.requires_grad_(False)
        self.params = [*self.agent.parameters(), *self.mixer.parameters()]
        if hp.optimizer == "adam":
            self.opt = torch.optim.Adam(self.params, lr=hp.learning_rate)
        else:  # pymarl's RMSprop settings
            self.opt = torch.optim.RMSprop(self.params, lr=hp.learning_rate, alpha=0.99, eps=1e-5)
        self.ids = torch.eye(self.A, device=device) if hp.obs_agent_id else None
        f32 = np.dtype(np.float32)
        fields = {"obs": ((self.A, self.O), f32), "state": ((state_size,), f32),
                  "avail": ((self.A, self.n_actions), f32), "active": ((self.A,), f32),
                  "action": ((self.A,), np.dtype(np.int64)), "reward": ((), f32), "terminated": ((), f32)}
        rows = (hp.max_episode_length + 1) if hp.max_episode_length else 32
        self.buffer = EpisodeReplayBuffer(hp.buffer_size, fields, rows)
        self.fields, self.rows = fields, rows
        self.rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))
        self.reward_norm = RunningMeanStd((), clip=float("inf")).to(device) if hp.standardise_rewards else None
        self.updates = 0
        self.last_target_update = 0
        self.pending_episodes = 0

    # ------------------------------------------------------------------------------ update
    def _q_values(self, net: AgentQNetwork, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Q-values ``[B, L+1, A, n_actions]`` of every row of sampled episodes (GRU from zeros)."""
        obs, act, active = batch["obs"], batch["action"], batch["active"]
        B, R = obs.shape[:2]
        la = None
        if self.hp.obs_last_action:
            onehot = F.one_hot(act, self.n_actions).float() * active[..., None]
            la = torch.cat([torch.zeros_like(onehot[:, :1]), onehot[:, :-1]], 1)
        x = agent_inputs(obs, la, self.ids)  # [B, R, A, in]
        q, _ = net(x.permute(0, 2, 1, 3).reshape(B * self.A, R, -1))
        return q.view(B, self.A, R, -1).permute(0, 2, 1, 3)

    def update(self, step: int) -> dict[str, float]:
        """One gradient step on ``batch_size`` sampled episodes; returns ML-Agents-style scalars."""
        hp = self.hp
        batch = self.buffer.sample(hp.batch_size, self.rng, self.device)
        filled = batch["filled"]  # [B, L]
        L = filled.shape[1]
        active, avail, state = batch["active"], batch["avail"], batch["state"]
        avail = torch.where(avail.sum(-1, keepdim=True) > 0, avail, torch.ones_like(avail))
        q = self._q_values(self.agent, batch)  # [B, L+1, A, n]
        chosen = q[:, :L].gather(-1, batch["action"][:, :L, :, None]).squeeze(-1) * active[:, :L]
        q_tot = self.mixer(chosen, state[:, :L])  # [B, L]
        with torch.no_grad():
            tq = self._q_values(self.target_agent, batch)[:, 1:]  # [B, L, A, n]
            nxt_avail = avail[:, 1:]
            if hp.double_q:
                best = q.detach()[:, 1:].masked_fill(nxt_avail < 0.5, NEG).argmax(-1, keepdim=True)
                t_max = tq.gather(-1, best).squeeze(-1)
            else:
                t_max = tq.masked_fill(nxt_avail < 0.5, NEG).max(-1).values
            t_max = t_max * active[:, 1:]
            next_tot = self.target_mixer(t_max, state[:, 1:])
            rewards = batch["reward"][:, :L]
            if self.reward_norm is not None:
                self.reward_norm.update(rewards[filled > 0])
                rewards = self.reward_norm(rewards)
            targets = td_lambda_targets(rewards, batch["terminated"][:, :L], filled, next_tot, self.gamma, hp.td_lambda)
        err = (q_tot - targets) * filled
        n = filled.sum().clamp(min=1.0)
        loss = (err ** 2).sum() / n
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, hp.max_grad_norm)
        self.opt.step()
        self.updates += 1
        if hp.target_update_tau is not None:
            self._soft_update(hp.target_update_tau)
        elif self.updates - self.last_target_update >= hp.target_update_interval:
            self._hard_update()
            self.last_target_update = self.updates
        return {"Losses/Value Loss": loss.item(), "Losses/Grad Norm": float(grad_norm),
                "Policy/Extrinsic Value Estimate": ((q_tot * filled).sum() / n).item(),
                "Policy/Target Value": ((targets * filled).sum() / n).item(),
                "Policy/Learning Rate": hp.learning_rate, "Policy/Epsilon": epsilon_at(hp, step)}

    def _hard_update(self) -> None:
        self.target_agent.load_state_dict(self.agent.state_dict())
        self.target_mixer.load_state_dict(self.mixer.state_dict())

    @torch.no_grad()
    def _soft_update(self, tau: float) -> None:
        for net, tgt in ((self.agent, self.target_agent), (self.mixer, self.target_mixer)):
            for p, tp in zip(net.parameters(), tgt.parameters()):
                tp.mul_(1.0 - tau).add_(p, alpha=tau)

    # ------------------------------------------------------------------------------ state
    def arch(self) -> dict:
        """What :class:`QPolicy` needs to rebuild the agent network without the YAML."""
        hp = self.hp
        return {"input_size": self.input_size, "n_actions": self.n_actions, "rnn_hidden_dim": hp.rnn_hidden_dim,
                "obs_last_action": hp.obs_last_action, "obs_agent_id": hp.obs_agent_id, "n_agents": self.A,
                "mixer": self.settings.trainer_type, "epsilon_finish": hp.epsilon_finish}

    def state_dict(self) -> dict:
        return {"arch": self.arch(), "agent": self.agent.state_dict(), "mixer": self.mixer.state_dict(),
                "target_agent": self.target_agent.state_dict(), "target_mixer": self.target_mixer.state_dict(),
                "optimizer": self.opt.state_dict(), "updates": self.updates,
                "last_target_update": self.last_target_update, "pending_episodes": self.pending_episodes,
                "buffer": self.buffer.state_dict(with_data=self.hp.save_replay_buffer),
                "reward_norm": None if self.reward_norm is None else self.reward_norm.state_dict(),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict, weights_only: bool = False) -> None:
        """Restore; ``weights_only`` (``--initialize-from``) loads the online networks (and copies
        them to the targets) but not the optimiser, counters or replay buffer."""
        self.agent.load_state_dict(state["agent"])
        self.mixer.load_state_dict(state["mixer"])
        if weights_only:
            self._hard_update()
            return
        self.target_agent.load_state_dict(state["target_agent"])
        self.target_mixer.load_state_dict(state["target_mixer"])
        self.opt.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
        self.last_target_update = int(state["last_target_update"])
        self.pending_episodes = int(state.get("pending_episodes", 0))
        self.buffer.load_state_dict(state["buffer"])
        if self.reward_norm is not None and state.get("reward_norm") is not None:
            self.reward_norm.load_state_dict(state["reward_norm"])
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]


class QActing:
    """Acting for one QMIX/VDN behavior: ε-greedy over the agent network (GRU state per copy and slot)
    and whole-episode recording for the replay buffer.

    Args:
        learner: the behavior's :class:`QLearner` (its agent network acts; a remote runner would hold a copy).
        n_envs: env copies ``E``.
    """

    def __init__(self, learner: "QLearner", n_envs: int):
        L = learner
        self.L, self.spec, self.hp, self.device = L, L.spec, L.hp, L.device
        self.E, self.A, self.O, self.n_actions, self.strength = n_envs, L.A, L.O, L.n_actions, L.strength
        self.agent, self.ids = L.agent, L.ids
        self.recorder = EpisodeRecorder(n_envs, L.fields, L.rows)
        self.hidden = torch.zeros(n_envs * self.A, self.hp.rnn_hidden_dim, device=self.device)
        self.last_action = np.zeros((n_envs, self.A, self.n_actions), np.float32)
        self.participating = np.zeros((n_envs, self.A), np.bool_)

    @torch.inference_mode()
    def act(self, arrays: dict[str, np.ndarray], epsilon: float) -> None:
        """ε-greedy actions for every slot of every copy; writes ``act_d`` and records the step's row."""
        name, E, A = self.spec.name, self.E, self.A
        alive = arrays[f"{name}/alive"]
        obs = arrays[f"{name}/obs"].reshape(E, A, self.O) * (alive[..., None] * np.float32(self.spec.obs_scale))
        mask = arrays.get(f"{name}/mask")
        mask = np.ones((E, A, self.n_actions), np.float32) if mask is None else mask.reshape(E, A, self.n_actions)
        active = arrays[f"{name}/active"]
        x = agent_inputs(torch.from_numpy(obs).to(self.device),
                         torch.from_numpy(self.last_action).to(self.device) if self.hp.obs_last_action else None,
                         self.ids).reshape(E * A, 1, -1)
        q, self.hidden = self.agent(x, self.hidden)
        a = epsilon_greedy(q[:, 0].cpu(), torch.from_numpy(mask).reshape(E * A, -1), epsilon).view(E, A).numpy()
        a = np.where(active, a, 0)
        arrays[f"{name}/act_d"][..., 0] = a
        rec = self.recorder
        rec.write("obs", obs)
        rec.write("state", arrays["state"].reshape(E, -1))
        rec.write("avail", mask)
        rec.write("active", active.astype(np.float32))
        rec.write("action", a)
        self.last_action = np.eye(self.n_actions, dtype=np.float32)[a] * active[..., None]
        self.participating = alive.copy()

    def after_step(self, arrays: dict[str, np.ndarray], finished: np.ndarray) -> list[tuple[dict, int]]:
        """Record the step's team reward; close finished episodes (bool ``[E]``) and full segments.
        Returns the closed episodes/segments as ``(episode rows, length)`` for the replay buffer."""
        name, E, A, rec = self.spec.name, self.E, self.A, self.recorder
        rew = arrays[f"{name}/reward"] * self.strength
        part = self.participating
        team = (rew * part).sum(-1)
        if self.hp.team_reward == "mean":
            team = team / np.maximum(part.sum(-1), 1)
        rec.write("reward", team.astype(np.float32))
        trunc = arrays[f"{name}/truncated"]
        if finished.any():
            # the episode is terminal for the team unless some agent was cut by the time limit
            rec.write("terminated", (~trunc.any(-1)).astype(np.float32), where=finished)
        rec.advance()
        cut = np.zeros(E, np.bool_)
        if self.hp.max_episode_length:
            cut = ~finished & (rec.t >= self.hp.max_episode_length)
        if not (finished.any() or cut.any()):
            return []
        # bootstrap row: final observations of truncated agents / the current ones at a segment cut
        if finished.any():
            fin_obs = arrays[f"{name}/final_obs"].reshape(E, A, self.O) * (trunc[..., None] * np.float32(self.spec.obs_scale))
            rec.write("obs", fin_obs, where=finished)
            rec.write("state", arrays["final_state"].reshape(E, -1), where=finished)
            rec.write("avail", np.ones((E, A, self.n_actions), np.float32), where=finished)
            rec.write("active", trunc.astype(np.float32), where=finished)
        if cut.any():
            alive = arrays[f"{name}/alive"]
            mask = arrays.get(f"{name}/mask")
            mask = np.ones((E, A, self.n_actions), np.float32) if mask is None else mask.reshape(E, A, self.n_actions)
            rec.write("obs", arrays[f"{name}/obs"].reshape(E, A, self.O) * (alive[..., None] * np.float32(self.spec.obs_scale)),
                      where=cut)
            rec.write("state", arrays["state"].reshape(E, -1), where=cut)
            rec.write("avail", mask, where=cut)
            rec.write("active", arrays[f"{name}/active"].astype(np.float32), where=cut)
        ended = finished | cut
        done = []
        for e in np.flatnonzero(ended):
            episode, n = rec.take(int(e))
            if n > 0:
                done.append((episode, n))
            self.last_action[e] = 0.0
        with torch.inference_mode():  # the GRU state of the new episodes starts at zero
            keep = torch.from_numpy(np.repeat(~ended, A).astype(np.float32)).to(self.device)
            self.hidden = self.hidden * keep[:, None]
        return done



class QCollector:
    """Acting apart from learning for QMIX/VDN: one batched GRU forward per behavior and env step over all
    copies; returns whole episodes (or ``max_episode_length`` segments) for the replay buffers.

    Args:
        learners: behavior -> :class:`QLearner`.
        n_envs: env copies ``E``.
    """

    def __init__(self, learners: dict[str, "QLearner"], n_envs: int):
        self.E = n_envs
        self.acting = {name: QActing(L, n_envs) for name, L in learners.items()}

    def collect(self, venv, step: int, epsilon, stop, on_episode=None, on_step=None
                ) -> tuple[int, dict[str, list[tuple[dict, int]]]]:
        """Step ``venv`` until ``stop(episodes so far)`` or ``QMIXTrainer.MAX_STEPS_PER_CALL`` env steps.

        Args:
            epsilon: ``epsilon(behavior, env step) -> float``.
            stop: ``stop({behavior: [(episode, length)]}) -> bool``, checked after every vector step.

        Returns:
            ``(env steps taken, {behavior: closed episodes})``.
        """
        arrays = venv.arrays
        episodes: dict[str, list[tuple[dict, int]]] = {name: [] for name in self.acting}
        t = 0
        while True:
            for name, a in self.acting.items():
                a.act(arrays, epsilon(name, step + t * self.E))
            done = venv.step()
            if on_step is not None:
                on_step(arrays, done, step + (t + 1) * self.E)
            finished = np.zeros(self.E, np.bool_)
            for e, stats in done:
                finished[e] = True
                if on_episode is not None:
                    on_episode(e, stats)
            t += 1
            for name, a in self.acting.items():
                episodes[name].extend(a.after_step(arrays, finished))
            if stop(episodes) or t * self.E >= QMIXTrainer.MAX_STEPS_PER_CALL:
                return t * self.E, episodes


class QMIXTrainer(Trainer):
    """QMIX (``trainer_type: qmix``) or VDN (``vdn``) over all behaviors of an env.

    One call of :meth:`collect_and_train` steps all ``E`` env copies (one batched GRU forward per
    behavior per step) until, for some behavior, ``update_interval`` episodes have finished and
    its buffer holds ``batch_size`` episodes (or 1024 env steps have passed), then runs
    ``finished episodes // update_interval`` gradient updates per behavior. So the ratio of
    updates to episodes is the same for any ``--num-envs``.

    Args:
        spec: the env.
        cfg: the run config.
        n_envs: env copies ``E`` of the vector env.
        device: torch device.

    Raises:
        ConfigError: a behavior without a single discrete action branch.
    """

    name = "qmix"
    MAX_STEPS_PER_CALL = 1024  # env steps (summed over copies) before returning to the run loop

    def __init__(self, spec: EnvSpec, cfg: RunConfig, n_envs: int, device: torch.device):
        self.spec, self.cfg, self.device, self.E = spec, cfg, device, n_envs
        state_size = int(np.prod(spec.state_shape))
        if not spec.state_is_obs:
            from marl.networks import warn_image_state

            warn_image_state(spec.state_shape, "the QMIX/VDN mixer")
        self.learners = {b.name: QLearner(b, state_size, cfg.behavior_settings(b.name), n_envs, device)
                         for b in spec.behaviors}
        self.collector = QCollector(self.learners, n_envs)
        self.timing = (0.0, 0.0)

    def collect_and_train(self, venv, step: int, on_episode=None, on_step=None) -> tuple[int, dict[str, dict[str, float]]]:
        """Step ``venv`` and train (see the class docstring).

        Args:
            venv: a :class:`envs.vector.VecEnv` with ``venv.n == E``.
            step: env steps done so far (for the ε schedule).
            on_episode: called with each ``(copy index, EpisodeStats)`` as episodes finish.

        Returns:
            ``(env steps taken, {behavior: mean scalars of this call's updates})``.
        """
        t_env, t_upd = self.timing
        t0 = time.perf_counter()
        # Small recurrent nets: one intra-op thread is fastest, and on a loaded machine a thread
        # pool that spins on busy cores makes every update many times slower.
        torch.set_num_threads(1)

        steps, episodes, _ = self.collect(venv, step, on_episode, on_step)
        t1 = time.perf_counter()
        logs = self.learn(step, steps, episodes)
        self.timing = (t_env + (t1 - t0), t_upd + (time.perf_counter() - t1))
        return steps, logs

    def collect(self, venv, step: int, on_episode=None, on_step=None):
        """Step ``venv`` until some behavior has ``update_interval`` new episodes and ``batch_size`` in its
        replay (or ``MAX_STEPS_PER_CALL`` env steps): ``(env steps, {behavior: [(episode, length)]}, seconds)``."""
        t0 = time.perf_counter()

        def stop(episodes) -> bool:
            ready = False
            for name, L in self.learners.items():
                new = episodes[name]
                ready |= (L.pending_episodes + len(new) >= L.hp.update_interval
                          and len(L.buffer) + len(new) >= L.hp.batch_size)
            return ready

        steps, episodes = self.collector.collect(
            venv, step, lambda name, s: epsilon_at(self.learners[name].hp, s), stop, on_episode, on_step)
        return steps, episodes, time.perf_counter() - t0

    def learn(self, step: int, steps: int, batch: dict) -> dict[str, dict[str, float]]:
        """Store the closed episodes in each replay buffer, then ``finished episodes // update_interval`` updates."""
        logs: dict[str, dict[str, float]] = {}
        for name, L in self.learners.items():
            for episode, n in batch[name]:
                L.buffer.add(episode, n)
            L.pending_episodes += len(batch[name])
            n_upd = L.pending_episodes // L.hp.update_interval
            if len(L.buffer) < L.hp.batch_size or step >= L.settings.max_steps or n_upd == 0:
                continue
            L.pending_episodes -= n_upd * L.hp.update_interval
            scalars = [L.update(step + steps) for _ in range(n_upd)]
            logs[name] = {k: float(np.mean([s[k] for s in scalars])) for k in scalars[0]}
        return logs

    def merge(self, batches: list[dict]) -> dict:
        return {name: [ep for b in batches for ep in b[name]] for name in self.learners}

    def weights(self) -> dict:
        return {n: {"agent": {k: v.detach().cpu() for k, v in L.agent.state_dict().items()}} for n, L in self.learners.items()}

    def load_weights(self, weights: dict) -> None:
        for n, w in weights.items():
            self.learners[n].agent.load_state_dict(w["agent"])

    # ------------------------------------------------------------------------------ state
    def state_dict(self, behavior: str) -> dict:
        return self.learners[behavior].state_dict()

    def load_state_dict(self, behavior: str, state: dict, weights_only: bool = False) -> None:
        self.learners[behavior].load_state_dict(state, weights_only)

    def actor(self, behavior: str) -> AgentQNetwork:
        return self.learners[behavior].agent


# ------------------------------------------------------------------------------------ inference
class QPolicy(Policy):
    """A QMIX/VDN agent network from a checkpoint: greedy (or ε-greedy) on its Q-values.

    ``hidden`` is float32 ``[B, rnn_hidden_dim + n_actions]``: the GRU state followed by the
    previous action's one-hot (both zero at the start of an episode). ``deterministic=False``
    explores with the run's ``epsilon_finish``.
    """

    def __init__(self, ck: dict, path: Path):
        from marl.checkpoint import CheckpointError, spec_from_dict

        self.path, self.spec = Path(path), spec_from_dict(ck["behavior_spec"])
        try:
            a = ck["trainer"]["arch"]
            self.arch = a
            self.net = AgentQNetwork(a["input_size"], a["n_actions"], a["rnn_hidden_dim"])
            self.net.load_state_dict(ck["trainer"]["agent"])
        except (KeyError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: not a usable QMIX/VDN checkpoint ({str(exc).splitlines()[0]})") from None
        self.net.eval()
        self.H, self.n_actions = a["rnn_hidden_dim"], a["n_actions"]

    @property
    def takes_agent_id(self) -> bool:
        return bool(self.arch["obs_agent_id"]) and int(self.arch["n_agents"]) > 1

    @torch.inference_mode()
    def act(self, obs, agent_index, mask=None, hidden=None, deterministic=True, game_states=None):
        idx = torch.as_tensor(np.asarray(agent_index), dtype=torch.int64)
        B = idx.shape[0]
        o = torch.as_tensor(np.asarray(obs, np.float32)).reshape(B, -1) * self.spec.obs_scale  # uint8 images -> [0, 1]
        h = torch.zeros(B, self.H + self.n_actions) if hidden is None else torch.as_tensor(np.asarray(hidden, np.float32))
        parts = [o]
        if self.arch["obs_last_action"]:
            parts.append(h[:, self.H:])
        if self.arch["obs_agent_id"]:
            parts.append(F.one_hot(idx, self.arch["n_agents"]).float())
        q, h_new = self.net(torch.cat(parts, -1)[:, None], h[:, : self.H])
        m = None if mask is None else torch.as_tensor(np.asarray(mask, np.float32)).reshape(B, -1)
        a = epsilon_greedy(q[:, 0], m, 0.0 if deterministic else float(self.arch["epsilon_finish"]))
        new_hidden = torch.cat([h_new, F.one_hot(a, self.n_actions).float()], -1).numpy()
        return a[:, None].numpy().astype(np.int64), None, new_hidden


# ------------------------------------------------------------------------------------ ONNX export
class QCore(nn.Module):
    """The agent Q-network as an ONNX policy core for :class:`marl.export.graph.UnityPolicyGraph`.

    ``forward(obs [B, O], memory [B, M], mask [B, n] | None) -> (Q [B, n], None, None, memory_out)``.
    The GRU cell is written out with ``Linear``/``sigmoid``/``tanh`` (opset 9, no ``GRU`` op;
    PyTorch's gate order r, z, n). ``memory`` is the GRU state, followed by the one-hot of the
    previous *masked greedy* action when the network takes it (``M = hidden + n`` then, else
    ``hidden``); ``takes_mask = True`` asks the graph for the mask so that action is the one the
    graph outputs. The agent id is a constant (``agent_slot``).
    """

    takes_mask = True

    def __init__(self, net: AgentQNetwork, arch: dict, agent_slot: int, obs_scale: float = 1.0):
        super().__init__()
        self.obs_scale = float(obs_scale)  # 1/255 for observations stored as uint8 (the env's raw frame)
        self.H, self.n = int(arch["rnn_hidden_dim"]), int(arch["n_actions"])
        self.last_action, self.use_id = bool(arch["obs_last_action"]), bool(arch["obs_agent_id"])
        self.fc1, self.fc2 = copy.deepcopy(net.fc1), copy.deepcopy(net.fc2)
        self.w_ih = nn.Linear(net.rnn.input_size, 3 * self.H)
        self.w_hh = nn.Linear(self.H, 3 * self.H)
        with torch.no_grad():
            self.w_ih.weight.copy_(net.rnn.weight_ih_l0)
            self.w_ih.bias.copy_(net.rnn.bias_ih_l0)
            self.w_hh.weight.copy_(net.rnn.weight_hh_l0)
            self.w_hh.bias.copy_(net.rnn.bias_hh_l0)
        one_hot = torch.zeros(1, int(arch["n_agents"]))
        one_hot[0, agent_slot] = 1.0
        self.register_buffer("agent_id", one_hot)
        self.register_buffer("actions", torch.arange(self.n).view(1, -1))
        self.memory_size = self.H + (self.n if self.last_action else 0)

    def forward(self, obs: torch.Tensor, memory: torch.Tensor | None, mask: torch.Tensor | None = None):
        H = self.H
        h = memory[:, :H]
        parts = [obs * self.obs_scale if self.obs_scale != 1.0 else obs]
        if self.last_action:
            parts.append(memory[:, H:])
        if self.use_id:
            parts.append(obs[:, :1] * 0.0 + self.agent_id)
        x = F.relu(self.fc1(torch.cat(parts, 1)))
        gi, gh = self.w_ih(x), self.w_hh(h)
        r = torch.sigmoid(gi[:, :H] + gh[:, :H])
        z = torch.sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
        n = torch.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
        h_new = (1.0 - z) * n + z * h
        q = self.fc2(h_new)
        if not self.last_action:
            return q, None, None, h_new
        scores = q if mask is None else q * mask - 1e8 * (1.0 - mask)
        a = torch.argmax(scores, dim=1, keepdim=True)
        return q, None, None, torch.cat([h_new, (self.actions == a).float()], 1)


def export_q(payload: dict, agent_slot: int):
    """The registry's exporter for QMIX/VDN checkpoints: the greedy agent network of slot ``agent_slot``.

    Returns:
        a :class:`marl.export.ExportPlan` (memory = GRU state + previous action one-hot).

    Raises:
        ExportError: the checkpoint's agent network does not match its behavior spec.
    """
    from marl.checkpoint import CheckpointError
    from marl.export.registry import ExportError, ExportPlan

    try:
        policy = QPolicy(payload, Path(f"<{payload.get('behavior', '?')} checkpoint>"))
    except (CheckpointError, TypeError, ValueError) as exc:
        raise ExportError(str(exc)) from None
    core = QCore(policy.net, policy.arch, agent_slot, policy.spec.obs_scale).eval()
    return ExportPlan(core=core, spec=policy.spec, reference=policy, memory_size=core.memory_size,
                      stochastic=False)
