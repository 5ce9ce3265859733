"""MAPPO and IPPO: rollout collection, GAE, and the clipped PPO update, top to bottom.

References:
    Yu et al. 2022, "The Surprising Effectiveness of PPO in Cooperative Multi-Agent Games"
    (NeurIPS Datasets & Benchmarks); official code marlbenchmark/on-policy
    (``onpolicy/algorithms/r_mappo/r_mappo.py``). IPPO (de Witt et al. 2020) is the same
    algorithm with a decentralised critic on each agent's own observation.

Choices, each as in the official MAPPO code unless noted:

* one actor per behavior shared by its agents, agent id as a one-hot input (parameter sharing);
* MAPPO's critic sees the global state (``env.state()``, else all observations concatenated)
  plus the agent id; IPPO's critic sees the agent's observation plus its id. A state of observations
  with image sensors is encoded per agent first (:class:`marl.networks.StateEncoder`, in the spirit
  of ML-Agents' POCA critic): no raw camera pixels in the critic's dense layers;
* GAE(gamma, lambda) per agent over its own decisions (:func:`marl.buffers.gae`); truncated
  episodes bootstrap from ``V(final state)``, terminated ones do not;
* value normalisation (:class:`marl.normalization.ValueNorm`), updated once per rollout with
  all its returns (the official code updates it per minibatch on the same data);
* advantages normalised over the rollout's valid experiences;
* PPO clipped surrogate, clipped value loss ``max(L(v), L(v_clipped))`` with Huber loss
  (delta 10), entropy bonus ``beta``, separate Adam optimisers (eps 1e-5) for actor and critic,
  gradient-norm clipping (10);
* agents that are not acting (dead, or waiting for their turn) are masked out of every loss
  (the official code's ``active_masks``, "death masking");
* learning rate, ``beta`` and ``epsilon`` decay linearly to ML-Agents' floors (1e-10, 1e-5, 0.1)
  over ``max_steps`` when their schedule is ``linear`` (ML-Agents' ``DecayedValue``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from pathlib import Path

from envs.spec import BehaviorSpec, EnvSpec
from marl.buffers import RolloutBuffer, compact_buffer, gae, merge_buffers, sequence_chunks
from marl.checkpoint import spec_from_dict
from marl.config import BehaviorSettings, NetworkSettings, PPOHyperparameters, RunConfig
from marl.networks import Actor, Critic, warn_image_state
from marl.normalization import ValueNorm
from marl.algos.base import ActorCriticTrainer
from marl.play import act_rows
from marl.policy import Policy, scale_continuous


def _adam(params, lr: float, eps: float) -> torch.optim.Adam:
    """Adam, fused (one kernel per step instead of a Python loop over parameters; profiled ~8% of a
    PPO update on CPU) where this torch build supports it on the parameters' device."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, eps=eps)


_POOL: list = []


def _update_pool():
    """One shared worker thread for critic updates, or None on a single-core machine."""
    from envs.vector import cpu_count

    if cpu_count() < 2:
        return None
    if not _POOL:
        from concurrent.futures import ThreadPoolExecutor

        _POOL.append(ThreadPoolExecutor(1, thread_name_prefix="critic-update", initializer=torch.set_num_threads,
                                        initargs=(1,)))
    return _POOL[0]


def uses_agent_id(net: NetworkSettings, env_id: str) -> bool:
    """Whether a shared policy takes the one-hot agent id: ``network_settings.agent_id``, or by default on
    except for Unity behaviors (ML-Agents' agents of a behavior are interchangeable; an exported brain
    has no id input). See ``docs/observations.md``."""
    if net.agent_id is not None:
        return bool(net.agent_id)
    from envs.registry import is_executable_path

    return not (is_executable_path(env_id) or env_id == "unity-editor")


def decayed(schedule: str, initial: float, floor: float, step: int, max_steps: int) -> float:
    """ML-Agents' ``DecayedValue``: linear from ``initial`` to ``floor`` over ``max_steps`` env steps."""
    if schedule == "constant":
        return initial
    frac = min(step / max(max_steps, 1), 1.0)
    return initial - (initial - floor) * frac


@dataclass
class UpdateStats:
    """Scalars of one behavior's update, named as ML-Agents' TensorBoard tags."""

    scalars: dict[str, float] = field(default_factory=dict)


LAZY_OBS_FLOATS = 16384
"""Observations of more floats than this per agent (images: [4, 84, 84] = 28,224) are gathered from the
rollout buffer minibatch by minibatch instead of copied whole for the update (measured on cooperative_pong
with buffer_size 2048: each whole copy was 231 MB)."""


class _Rows:
    """The rows ``(t, e, a)`` of a buffer field ``[T, E, A, *shape]``, gathered when indexed.

    ``rows[sel]`` (``sel`` an index tensor of any shape into the ``n`` rows, or a slice) gives the field's dtype
    ``[*sel.shape, prod(shape)]``: the same values as ``field[t, e, a].reshape(n, -1)[sel]`` without
    materialising the ``n`` rows."""

    def __init__(self, field: torch.Tensor, idx: tuple[torch.Tensor, ...]):
        self.field, self.idx = field, idx
        self.n = idx[0].numel()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, sel) -> torch.Tensor:
        t, e, a = (i[sel] for i in self.idx)
        return self.field[t, e, a].reshape(*t.shape, -1)


class PPOLearner:
    """One behavior's actor, critic and optimisers: learning from a recorded :class:`Rollout`.

    Args:
        spec: the behavior.
        state_size: global state size (MAPPO critic input).
        settings: the behavior's YAML settings.
        centralised: True = MAPPO critic on the global state, False = IPPO critic on observations.
        n_envs: env copies ``E`` (buffer width).
        device: torch device.
        spec_env_id: the env id (whether the actor takes agent ids, :func:`uses_agent_id`).
        state_parts: where each agent's sensors sit in the state when it is observations concatenated
            (:attr:`envs.spec.EnvSpec.state_parts`); with an image sensor there, MAPPO's critic encodes
            each agent's part (:class:`marl.networks.StateEncoder`). None: the flat state.
    """

    def __init__(self, spec: BehaviorSpec, state_size: int, settings: BehaviorSettings, centralised: bool,
                 n_envs: int, device: torch.device, spec_env_id: str = "", state_parts=None):
        self.spec, self.settings, self.centralised, self.device = spec, settings, centralised, device
        self.hp: PPOHyperparameters = settings.hp
        self.gamma = settings.reward_signals.extrinsic.gamma
        self.strength = settings.reward_signals.extrinsic.strength
        A, net = spec.n_agents, settings.network_settings
        self.n_ids = A if uses_agent_id(net, spec_env_id) else 0  # one-hot id width (0 = no id input)
        self.actor = Actor(spec.obs_size, self.n_ids, spec.action, net, spec.obs_shape, spec.sensors,
                           spec.obs_scale).to(device)
        self._critic_args = (state_size if centralised else spec.obs_size, self.n_ids, net,
                             None if centralised else spec.obs_shape, None if centralised else spec.sensors)
        self.critic = Critic(*self._critic_args, state_parts=state_parts if centralised else None,
                             in_scale=1.0 if centralised else spec.obs_scale).to(device)
        self.value_norm = ValueNorm().to(device) if self.hp.use_value_norm else None
        self.actor_opt = _adam(self.actor.parameters(), self.hp.learning_rate, self.hp.adam_eps)
        self.critic_opt = _adam(self.critic.parameters(), self.hp.critic_learning_rate or self.hp.learning_rate,
                                self.hp.adam_eps)
        self.E = n_envs
        self.ids = torch.eye(A, device=device)[:, : self.n_ids].repeat(n_envs, 1)  # [E*A, n_ids] one-hot agent ids
        # Capacity: enough rows for buffer_size experiences even if one agent per env acts per step.
        self.capacity = math.ceil(self.hp.buffer_size / n_envs) + 1
        self.state_size = state_size
        # memory (LSTM) policies: actor and critic carry a memory per slot; training runs on sequences
        self.memory_size = net.memory.memory_size if net.memory is not None else 0
        self.seq_len = net.memory.sequence_length if net.memory is not None else 1

    # ------------------------------------------------------------------------------ acting
    def critic_input(self, obs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The critic's *encoded* input float32 ``[E*A, encoding]`` (call the critic with ``encoded=True``):
        MAPPO: each state ``[E, S]`` encoded once (:meth:`marl.networks.Critic.encode`, the identity for a
        flat state) and repeated per agent; IPPO: each agent's observation ``[E*A, obs]`` encoded."""
        if self.centralised:
            return self.critic.encode(state).repeat_interleave(self.spec.n_agents, 0)
        return self.critic.encode(obs)

    def values(self, obs: torch.Tensor, state: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        """Denormalised ``V`` float32 ``[E*A]`` for observations ``[E*A, obs]`` and states ``[E, S]``
        (a recurrent critic: from its memory ``[E*A, memory_size]``)."""
        x = self.critic_input(obs, state)
        v = self.critic(x, self.ids, encoded=True) if memory is None else self.critic.step(x, self.ids, memory, encoded=True)[0]
        return self.value_norm.denormalize(v) if self.value_norm is not None else v

    @torch.no_grad()
    def _rollout_values(self, buf: dict[str, torch.Tensor], states: torch.Tensor | None) -> torch.Tensor:
        """Critic outputs (normalised) float32 ``[T, E, A]`` for every stored decision (0 elsewhere).

        Computed once per rollout in batches of ``batch_size`` rather than at every env step: the
        critic does not change during collection, so the values are those the official MAPPO code
        stores while collecting, at a fraction of the per-call overhead.
        """
        valid = buf["valid"]
        values = torch.zeros(valid.shape, device=self.device)
        t, e, a = valid.nonzero(as_tuple=True)
        if t.numel() == 0:
            return values
        step = max(int(self.hp.batch_size), 1)
        encoded = False
        if self.centralised and self.critic.encoder is not None:
            # an encoded state (images through a CNN): encode each (t, e) state once, not once per agent
            rows, inv = torch.unique(t * states.shape[1] + e, return_inverse=True)
            flat = states.reshape(-1, states.shape[-1])
            x = torch.cat([self.critic.encode(flat[rows[i:i + step]]) for i in range(0, rows.numel(), step)])[inv]
            encoded = True
        elif self.centralised:
            x = states[t, e]
        else:
            x = _Rows(buf["obs"], (t, e, a))  # gathered batch by batch: no copy of the whole rollout
        ids = F.one_hot(a, self.spec.n_agents).float()[:, : self.n_ids]
        values[t, e, a] = torch.cat([self.critic(x[i:i + step], ids[i:i + step], encoded)
                                     for i in range(0, t.numel(), step)])
        return values

    # ------------------------------------------------------------------------------ update
    def update(self, step: int, rollout: "Rollout") -> dict[str, float]:
        """One PPO update on a recorded rollout (:class:`Rollout`, from :class:`PPOCollector`).

        Args:
            step: env steps so far (schedules).
            rollout: the behavior's experience; ``rollout.bootstrap`` float32 ``[E, A]`` = V(state after it).

        Returns ML-Agents-named scalars (``Losses/Policy Loss`` ...).
        """
        hp, s = self.hp, self.settings
        buf = rollout.buffer.tensors(self.device)
        bootstrap = torch.as_tensor(rollout.bootstrap, device=self.device)
        states = (torch.from_numpy(rollout.state_rows[: rollout.buffer.t]).to(self.device)
                  if self.centralised else None)
        valid = buf["valid"] & torch.from_numpy(rollout.learning).to(self.device)
        recurrent = self.memory_size > 0
        # normalised critic outputs [T, E, A]: recorded while collecting (recurrent critic), else computed now
        values = buf["value"] if recurrent else self._rollout_values(buf, states)
        values_dn = self.value_norm.denormalize(values) if self.value_norm is not None else values
        adv, returns = gae(buf["reward"], values_dn, buf["done"], buf["valid"], bootstrap, self.gamma, hp.lambd)
        idx = valid.nonzero(as_tuple=True)  # (t, e, a) of every experience to train on
        n = idx[0].numel()
        if n == 0:
            return {}
        lazy = not recurrent and int(np.prod(buf["obs"].shape[3:])) > LAZY_OBS_FLOATS
        obs = _Rows(buf["obs"], idx) if lazy else buf["obs"][idx].reshape(n, -1)
        ids = F.one_hot(idx[2], self.spec.n_agents).float()[:, : self.n_ids]
        mask = buf["mask"][idx] if "mask" in buf else None
        act_d = buf["act_d"][idx] if "act_d" in buf else None
        act_c = buf["act_c"][idx] if "act_c" in buf else None
        # a critic that encodes the state's images (StateEncoder), feed-forward: its minibatches hold the
        # experiences of whole states (the agents deciding at one (t, e)) and each state is encoded once
        # per minibatch, as ML-Agents' POCA critic encodes a group's observations once per group step
        grouped = self.centralised and not recurrent and self.critic.encoder is not None
        if grouped:
            flat_states = states.reshape(-1, states.shape[-1])  # [T*E, S]
            state_of = idx[0] * states.shape[1] + idx[1]  # [n]: row of each experience's state
            critic_x = None
        elif self.centralised:
            critic_x = states[idx[0], idx[1]]
        else:
            critic_x = obs
        old_logp, old_v, ret = buf["logp"][idx], values[idx], returns[idx]
        a = adv[idx]
        a = (a - a.mean()) / (a.std() + 1e-5) if n > 1 else a
        if self.actor.obs_norm is not None:
            for i in range(0, n, 4096) if lazy else [0]:
                self.actor.update_obs_norm(obs[i:i + 4096] if lazy else obs)
        if self.value_norm is not None:
            self.value_norm.update(ret)
            target = self.value_norm.normalize(ret)
        else:
            target = ret

        lr = decayed(hp.learning_rate_schedule, hp.learning_rate, 1e-10, step, s.max_steps)
        clr = decayed(hp.learning_rate_schedule, hp.critic_learning_rate or hp.learning_rate, 1e-10, step, s.max_steps)
        beta = decayed(hp.beta_schedule or hp.learning_rate_schedule, hp.beta, 1e-5, step, s.max_steps)
        eps = decayed(hp.epsilon_schedule or hp.learning_rate_schedule, hp.epsilon, 0.1, step, s.max_steps)
        for g in self.actor_opt.param_groups:
            g["lr"] = lr
        for g in self.critic_opt.param_groups:
            g["lr"] = clr

        if recurrent:
            # sequences of each slot's decisions (cut at episode ends and every sequence_length); the
            # minibatches draw whole sequences, batch_size // sequence_length of them (rMAPPO, ML-Agents)
            g = (idx[1] * self.spec.n_agents + idx[2]).cpu().numpy()
            order = torch.from_numpy(sequence_chunks(g, idx[0].cpu().numpy(), buf["done"][idx].cpu().numpy(),
                                                     self.seq_len)).to(self.device)
            pad = order >= 0
            o = order.clamp(min=0)
            seq = {"obs": obs[o], "ids": ids[o], "mask": None if mask is None else mask[o],
                   "d": None if act_d is None else act_d[o], "c": None if act_c is None else act_c[o],
                   "critic_x": critic_x[o], "old_logp": old_logp[o], "old_v": old_v[o], "a": a[o],
                   "target": target[o], "mem_a": buf["mem_a"][idx][order[:, 0]], "mem_c": buf["mem_c"][idx][order[:, 0]]}
            units, batch = order.shape[0], max(1, min(hp.batch_size // self.seq_len, order.shape[0]))
        else:
            units, batch = n, min(hp.batch_size, n)
        # the same minibatches for actor and critic, drawn up front (so the RNG stream does not
        # depend on how the two halves are scheduled)
        minibatches = [mb for _ in range(hp.num_epoch) for mb in torch.randperm(units, device=self.device).split(batch)
                       if mb.numel() == batch]
        critic_minibatches = minibatches
        if grouped:  # as many minibatches of the same size, states in random order, each state's experiences together
            states_used, state_rank = torch.unique(state_of, return_inverse=True)
            critic_minibatches = []
            for _ in range(hp.num_epoch):
                order = torch.argsort(torch.randperm(states_used.numel(), device=self.device)[state_rank])
                critic_minibatches += [mb for mb in order.split(batch) if mb.numel() == batch]

        def actor_epochs() -> torch.Tensor:
            """Clipped surrogate + entropy bonus over every minibatch; returns summed (policy loss, entropy)."""
            sums = torch.zeros(2, device=self.device)
            for mb in minibatches:
                if recurrent:
                    q, pm = seq, pad[mb]
                    logp, ent = self.actor.evaluate_sequences(q["obs"][mb], q["ids"][mb],
                                                              None if q["mask"] is None else q["mask"][mb],
                                                              None if q["d"] is None else q["d"][mb],
                                                              None if q["c"] is None else q["c"][mb], q["mem_a"][mb])
                    logp, ent, olp, adv_mb = logp[pm], ent[pm], q["old_logp"][mb][pm], q["a"][mb][pm]
                else:
                    logp, ent = self.actor.evaluate(obs[mb], ids[mb], None if mask is None else mask[mb],
                                                    None if act_d is None else act_d[mb],
                                                    None if act_c is None else act_c[mb])
                    olp, adv_mb = old_logp[mb], a[mb]
                ratio = torch.exp(logp - olp)
                surr = torch.min(ratio * adv_mb, torch.clamp(ratio, 1 - eps, 1 + eps) * adv_mb)
                policy_loss = -surr.mean()
                entropy = ent.mean()
                self.actor_opt.zero_grad(set_to_none=True)
                (policy_loss - beta * entropy).backward()
                torch.nn.utils.clip_grad_norm_(self.actor.parameters(), hp.max_grad_norm, foreach=True)
                self.actor_opt.step()
                sums += torch.stack([policy_loss.detach(), entropy.detach()])
            return sums

        def critic_epochs() -> torch.Tensor:
            """Clipped (Huber) value loss over every minibatch; returns the summed value loss."""
            total = torch.zeros((), device=self.device)
            for mb in critic_minibatches:
                if recurrent:
                    q, pm = seq, pad[mb]
                    v = self.critic.sequences(q["critic_x"][mb], q["ids"][mb], q["mem_c"][mb])[pm]
                    ov, tg = q["old_v"][mb][pm], q["target"][mb][pm]
                elif grouped:
                    rows, inv = torch.unique(state_of[mb], return_inverse=True)
                    v = self.critic(self.critic.encode(flat_states[rows])[inv], ids[mb], encoded=True)
                    ov, tg = old_v[mb], target[mb]
                else:
                    v, ov, tg = self.critic(critic_x[mb], ids[mb]), old_v[mb], target[mb]
                v_clip = ov + torch.clamp(v - ov, -eps, eps)
                if hp.use_huber_loss:
                    l_v = F.huber_loss(v, tg, delta=hp.huber_delta, reduction="none")
                    l_c = F.huber_loss(v_clip, tg, delta=hp.huber_delta, reduction="none")
                else:
                    l_v, l_c = 0.5 * (v - tg) ** 2, 0.5 * (v_clip - tg) ** 2
                value_loss = (torch.max(l_v, l_c) if hp.use_clipped_value_loss else l_v).mean()
                self.critic_opt.zero_grad(set_to_none=True)
                (hp.value_loss_coef * value_loss).backward()
                torch.nn.utils.clip_grad_norm_(self.critic.parameters(), hp.max_grad_norm, foreach=True)
                self.critic_opt.step()
                total += value_loss.detach()
            return total

        # Actor and critic share no parameters and have their own optimisers, so their updates are
        # independent: on a multi-core CPU the critic's runs in a second thread (torch releases the
        # GIL inside ops) while this thread updates the actor (profiled: update wall time -25%).
        pool = _update_pool() if self.device.type == "cpu" else None
        if pool is not None:
            future = pool.submit(critic_epochs)
            try:
                actor_sums = actor_epochs()
            finally:  # even on Ctrl-C: a checkpoint must never be taken mid-update of the critic
                value_sum = future.result()
        else:
            actor_sums, value_sum = actor_epochs(), critic_epochs()
        n_mb = len(minibatches)
        totals = torch.stack([actor_sums[0], value_sum, actor_sums[1]])
        pl, vl, ent_mean = (totals / max(n_mb, 1)).tolist()
        return {"Losses/Policy Loss": pl, "Losses/Value Loss": vl,
                "Policy/Entropy": ent_mean, "Policy/Learning Rate": lr, "Policy/Beta": beta,
                "Policy/Epsilon": eps, "Policy/Extrinsic Value Estimate": values_dn[buf["valid"]].mean().item()}

    # ------------------------------------------------------------------------------ state
    def widened_state(self, state: dict, old_env, new_env) -> dict:
        """``state`` (saved for ``old_env``'s slots) widened to this learner's slots: :func:`widen_learner_state`."""
        return widen_learner_state(self, state, old_env, new_env)

    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "value_norm": None if self.value_norm is None else self.value_norm.state_dict()}

    def fit_critic(self, critic_state: dict) -> None:
        """Match the critic to saved weights: a MAPPO critic saved before the per-agent state encoder
        (raw pixels of every agent in its first dense layer, no ``encoder.*`` weights) is rebuilt flat,
        as it was trained, with a new optimiser; otherwise nothing changes."""
        if self.critic.encoder is None or any(k.startswith("encoder.") for k in critic_state):
            return
        self.critic = Critic(*self._critic_args, in_scale=1.0 if self.centralised else self.spec.obs_scale).to(self.device)
        self.critic_opt = _adam(self.critic.parameters(), self.hp.critic_learning_rate or self.hp.learning_rate,
                                self.hp.adam_eps)

    def load_state_dict(self, state: dict, weights_only: bool = False) -> None:
        """Restore; ``weights_only`` (``--initialize-from``) loads networks but not optimisers."""
        self.actor.load_state_dict(state["actor"])
        self.fit_critic(state["critic"])
        self.critic.load_state_dict(state["critic"])
        if self.value_norm is not None and state.get("value_norm") is not None:
            self.value_norm.load_state_dict(state["value_norm"])
        if not weights_only:
            self.actor_opt.load_state_dict(state["actor_opt"])
            self.critic_opt.load_state_dict(state["critic_opt"])


@dataclass
class Rollout:
    """One behavior's recorded experience: what :class:`PPOCollector` hands to :meth:`PPOLearner.update`
    (numpy, so a remote runner can ship it).

    Attributes:
        buffer: the :class:`marl.buffers.RolloutBuffer` (rows ``[T, E, A, ...]``: obs, logp, actions, masks,
            rewards, dones, valid).
        state_rows: float32 ``[T, E, S]`` global state at each row (MAPPO's critic) or None (IPPO).
        learning: bool ``[E, A]``: slots whose experience is trained on (self-play opponents are not).
        bootstrap: float32 ``[E, A]``: V(state after the last row) for each slot.
    """

    buffer: RolloutBuffer
    state_rows: np.ndarray | None
    learning: np.ndarray
    bootstrap: np.ndarray

    def compact(self) -> "Rollout":
        """A copy holding only the filled rows (what an env runner ships back)."""
        t = self.buffer.t
        return Rollout(compact_buffer(self.buffer), None if self.state_rows is None else self.state_rows[:t].copy(),
                       self.learning.copy(), self.bootstrap.copy())

    @staticmethod
    def merge(parts: list["Rollout"]) -> "Rollout":
        """Fragments of different env copies side by side (``marl.buffers.merge_buffers``)."""
        buf = merge_buffers([p.buffer for p in parts])
        rows = None
        if parts[0].state_rows is not None:
            rows = np.zeros((buf.t, buf.E, parts[0].state_rows.shape[-1]), np.float32)
            off = 0
            for p in parts:
                rows[: p.buffer.t, off:off + p.buffer.E] = p.state_rows[: p.buffer.t]
                off += p.buffer.E
        return Rollout(buf, rows, np.concatenate([p.learning for p in parts]),
                       np.concatenate([p.bootstrap for p in parts]))


class PPOCollector:
    """Acting, apart from learning: one batched actor forward per behavior and env step over all ``E``
    copies and ``A`` agents; records what the PPO update needs (observations, masks, actions,
    log-probabilities, rewards credited to each agent's last decision, episode ends with ``gamma *
    V(final obs)`` added on truncation, global states). Slots given to another policy
    (:meth:`set_opponents`, self-play) act through the :class:`marl.policy.Policy` interface in the
    same step and are not recorded.

    Args:
        learners: behavior -> its :class:`PPOLearner` (the collector acts with their actors and asks
            their critics for truncation bootstraps; a remote runner would hold copies).
        n_envs: env copies ``E``.
    """

    def __init__(self, learners: dict[str, "PPOLearner"], n_envs: int):
        self.learners, self.E = learners, n_envs
        self.buffers: dict[str, RolloutBuffer] = {}
        self.state_rows: dict[str, np.ndarray | None] = {}
        self.learning: dict[str, np.ndarray] = {}
        self.opponents: dict[str, tuple[np.ndarray, Policy | None]] = {}
        self.memory: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # recurrent: (actor, critic) memory [E*A, M]
        self.opponent_hidden: dict[str, np.ndarray | None] = {}  # a recurrent opponent's memory [E, A, ...]
        self.traj: dict[str, np.ndarray] = {}  # last seen trajectory id per slot (recurrent memory resets)
        for name, L in learners.items():
            spec = L.spec
            # observations as the env layer stores them (uint8 images stay uint8: a quarter of the memory)
            fields = {"obs": (spec.obs_shape, np.dtype(spec.obs_dtype)), "logp": ((), np.dtype(np.float32))}
            if spec.action.is_discrete:
                fields["mask"] = ((spec.action.mask_size,), np.dtype(np.float32))
                fields["act_d"] = ((len(spec.action.discrete_branches),), np.dtype(np.int64))
            if spec.action.continuous_size:
                fields["act_c"] = ((spec.action.continuous_size,), np.dtype(np.float32))
            if L.memory_size:  # memories going into each decision, and the critic's value recorded with it
                fields["mem_a"] = ((L.memory_size,), np.dtype(np.float32))
                fields["mem_c"] = ((L.memory_size,), np.dtype(np.float32))
                fields["value"] = ((), np.dtype(np.float32))
                self.memory[name] = (torch.zeros(n_envs * spec.n_agents, L.memory_size, device=L.device),
                                     torch.zeros(n_envs * spec.n_agents, L.memory_size, device=L.device))
            self.buffers[name] = RolloutBuffer(L.capacity, n_envs, spec.n_agents, fields)
            self.state_rows[name] = (np.zeros((L.capacity, n_envs, L.state_size), np.float32) if L.centralised
                                     else None)
            self.learning[name] = np.ones((n_envs, spec.n_agents), np.bool_)

    def set_opponents(self, behavior: str, slots: np.ndarray, policy: Policy | None) -> None:
        """Slots ``slots`` (bool ``[A]``) act with ``policy`` (sampled) and are not recorded."""
        slots = np.asarray(slots, np.bool_)
        self.learning[behavior][...] = ~slots[None, :]
        self.opponents[behavior] = (slots, policy)

    @torch.inference_mode()
    def act(self, arrays: dict[str, np.ndarray]) -> None:
        """Batched forward of every behavior's policy on all copies; writes actions and records rows."""
        for name, L in self.learners.items():
            b, buffer = L.spec, self.buffers[name]
            obs_np = arrays[f"{name}/obs"]
            obs = torch.from_numpy(obs_np).reshape(self.E * b.n_agents, -1).to(L.device)
            mask_np = arrays.get(f"{name}/mask")
            mask = torch.from_numpy(mask_np).reshape(self.E * b.n_agents, -1).to(L.device) if mask_np is not None else None
            active = arrays[f"{name}/active"]
            if L.memory_size:  # memory policies: one LSTM step for actor and critic, memories move on for deciders
                tid = arrays.get(f"{name}/traj_id")
                if tid is not None:  # a slot that now holds another agent (a Unity respawn) starts from zero memory
                    last = self.traj.setdefault(name, tid.copy())
                    fresh = torch.from_numpy((tid != last).reshape(-1, 1)).to(L.device)
                    if fresh.any():
                        keep = (~fresh).float()
                        self.memory[name] = (self.memory[name][0] * keep, self.memory[name][1] * keep)
                    self.traj[name] = tid.copy()
                mem_a, mem_c = self.memory[name]
                d, c, logp, new_a = L.actor.act_recurrent(obs, L.ids, mask, mem_a)
                v, new_c = L.critic.step(L.critic_input(obs, torch.from_numpy(arrays["state"]).reshape(self.E, -1).to(L.device)),
                                         L.ids, mem_c, encoded=True)
                row = {"obs": obs_np, "logp": logp.view(self.E, b.n_agents).cpu().numpy(),
                       "mem_a": mem_a.view(self.E, b.n_agents, -1).cpu().numpy(),
                       "mem_c": mem_c.view(self.E, b.n_agents, -1).cpu().numpy(),
                       "value": v.view(self.E, b.n_agents).cpu().numpy()}
                moved = torch.from_numpy(active.reshape(-1, 1)).to(L.device)
                self.memory[name] = (torch.where(moved, new_a, mem_a), torch.where(moved, new_c, mem_c))
            else:
                d, c, logp = L.actor.act(obs, L.ids, mask)  # (values: batched over the rollout in the update)
                row = {"obs": obs_np, "logp": logp.view(self.E, b.n_agents).cpu().numpy()}
            if d is not None:
                d_np = d.view(self.E, b.n_agents, -1).cpu().numpy()
                arrays[f"{name}/act_d"][...] = d_np
                row["act_d"], row["mask"] = d_np, mask_np
            if c is not None:
                c_np = c.view(self.E, b.n_agents, -1).cpu().numpy()
                arrays[f"{name}/act_c"][...] = scale_continuous(c_np)  # ML-Agents' action clipping
                row["act_c"] = c_np
            rows = self.state_rows[name]
            if rows is not None:
                rows[buffer.t] = arrays["state"].reshape(self.E, -1)  # a state of any shape, flattened
            # opponent slots (self-play) act with the opponent's policy; only learning slots are recorded
            opp = self.opponents.get(name)
            if opp is not None and opp[1] is not None:
                store = self.opponent_hidden.get(name)
                e_idx, a_idx, _, _, h = act_rows(opp[1], arrays, b, active & opp[0][None, :], deterministic=False,
                                                 hidden=store)
                if h is not None:
                    h = np.asarray(h)
                    if store is None:
                        store = self.opponent_hidden[name] = np.zeros((self.E, b.n_agents, *h.shape[1:]), h.dtype)
                    store[e_idx, a_idx] = h
            buffer.add_decisions(active & self.learning[name], **row)

    @torch.inference_mode()
    def after_step(self, arrays: dict[str, np.ndarray]) -> None:
        """Credit rewards to open decisions; close ended episodes, bootstrapping truncations."""
        final_state = None
        for name, L in self.learners.items():
            buffer = self.buffers[name]
            buffer.add_reward(arrays[f"{name}/reward"] * L.strength)
            term, trunc = arrays[f"{name}/terminated"], arrays[f"{name}/truncated"]
            if not (term.any() or trunc.any()):
                continue
            boot = None
            mem = self.memory.get(name)
            if trunc.any():
                if final_state is None:
                    final_state = torch.from_numpy(arrays["final_state"].reshape(self.E, -1).copy()).to(L.device)
                fin = torch.from_numpy(arrays[f"{name}/final_obs"]).reshape(self.E * L.spec.n_agents, -1).to(L.device)
                v = L.values(fin, final_state, None if mem is None else mem[1])
                boot = (L.gamma * v).view(self.E, L.spec.n_agents).cpu().numpy() * trunc
            ended = term | trunc
            buffer.end_episodes(ended, boot)
            keep = torch.from_numpy(~ended.reshape(-1, 1)).to(L.device)
            if mem is not None:  # a new episode starts from a zero memory
                self.memory[name] = (mem[0] * keep, mem[1] * keep)
            if self.opponent_hidden.get(name) is not None:
                self.opponent_hidden[name][ended] = 0

    def collect(self, venv, step: int, on_episode=None, on_step=None) -> tuple[int, dict[str, Rollout], float]:
        """Step ``venv`` until every behavior has ``buffer_size`` experiences (or its buffer is full).

        Returns:
            ``(env steps = T * E, {behavior: Rollout}, seconds spent waiting on env steps)``.
        """
        arrays = venv.arrays
        for buffer in self.buffers.values():
            buffer.reset()
        t, t_env = 0, 0.0
        while True:
            self.act(arrays)
            t0 = time.perf_counter()
            finished = venv.step()
            t_env += time.perf_counter() - t0
            if on_episode is not None:
                for e, stats in finished:
                    on_episode(e, stats)
            if on_step is not None:
                on_step(arrays, finished, step + (t + 1) * self.E)
            self.after_step(arrays)
            t += 1
            if all(self.buffers[n].count >= L.hp.buffer_size or self.buffers[n].t >= L.capacity
                   for n, L in self.learners.items()):
                break
        with torch.inference_mode():
            state = torch.from_numpy(arrays["state"].reshape(self.E, -1).copy()).to(next(iter(self.learners.values())).device)
            out = {}
            for n, L in self.learners.items():
                mem = self.memory.get(n)
                boot = L.values(torch.from_numpy(arrays[f"{n}/obs"]).reshape(self.E * L.spec.n_agents, -1).to(L.device), state,
                                None if mem is None else mem[1])
                out[n] = Rollout(self.buffers[n], self.state_rows[n], self.learning[n].copy(),
                                 boot.view(self.E, L.spec.n_agents).cpu().numpy().copy())
        return t * self.E, out, t_env


class PPOTrainer(ActorCriticTrainer):
    """MAPPO (``centralised=True``) or IPPO over all behaviors of an env.

    One call of :meth:`collect_and_train` collects at least ``buffer_size`` experiences for every
    behavior from the vector env (``T`` env steps of all ``E`` copies, one batched forward per
    behavior per step) and runs one PPO update per behavior.

    Args:
        spec: the env.
        cfg: the run config (``behavior_settings`` per behavior).
        n_envs: env copies ``E`` of the vector env.
        device: torch device.
    """

    name = "ppo"

    def __init__(self, spec: EnvSpec, cfg: RunConfig, n_envs: int, device: torch.device):
        self.spec, self.cfg, self.device, self.E = spec, cfg, device, n_envs
        self.learners: dict[str, PPOLearner] = {}
        state_size = int(np.prod(spec.state_shape))
        if not spec.state_is_obs and any(cfg.behavior_settings(b.name).trainer_type == "mappo" for b in spec.behaviors):
            warn_image_state(spec.state_shape, "MAPPO's centralised critic")
        for b in spec.behaviors:
            s = cfg.behavior_settings(b.name)
            self.learners[b.name] = PPOLearner(b, state_size, s, s.trainer_type == "mappo", n_envs, device, spec.env_id,
                                               spec.state_parts)
        self.collector = PPOCollector(self.learners, n_envs)
        self.timing = (0.0, 0.0)  # seconds waiting on env steps, seconds in updates (run_logs/timers.json)

    def collect_and_train(self, venv, step: int, on_episode=None, on_step=None) -> tuple[int, dict[str, dict[str, float]]]:
        """Collect one rollout from ``venv`` and update every behavior that is still training.

        Args:
            venv: a :class:`envs.vector.VecEnv` with ``venv.n == E``.
            step: env steps done so far (for schedules).
            on_episode: called with each ``(copy index, EpisodeStats)`` as episodes finish.
            on_step: called as ``on_step(arrays, finished, env_step)`` after every vector step, before
                rewards are credited (the self-play wrapper scores games and swaps opponents here).

        Returns:
            ``(env steps taken = T * E, {behavior: update scalars})``.
        """
        steps, rollouts, t_env = self.collect(venv, step, on_episode, on_step)
        t0 = time.perf_counter()
        logs = self.learn(step, steps, rollouts)
        self.timing = (self.timing[0] + t_env, self.timing[1] + time.perf_counter() - t0)
        return steps, logs

    def collect(self, venv, step: int, on_episode=None, on_step=None):
        return self.collector.collect(venv, step, on_episode, on_step)

    def learn(self, step: int, steps: int, batch: dict) -> dict[str, dict[str, float]]:
        return {name: L.update(step + steps, batch[name]) for name, L in self.learners.items()
                if step < L.settings.max_steps}

    def merge(self, batches: list[dict]) -> dict:
        return {name: Rollout.merge([b[name] for b in batches]) for name in self.learners}

    def compact(self, batch: dict) -> dict:
        return {name: r.compact() for name, r in batch.items()}

    def weights(self) -> dict:
        def cpu(sd):
            return {k: v.detach().cpu() for k, v in sd.items()}

        return {n: {"actor": cpu(L.actor.state_dict()), "critic": cpu(L.critic.state_dict()),
                    "value_norm": None if L.value_norm is None else cpu(L.value_norm.state_dict())}
                for n, L in self.learners.items()}

    def load_weights(self, weights: dict) -> None:
        for n, w in weights.items():
            L = self.learners[n]
            L.actor.load_state_dict(w["actor"])
            L.fit_critic(w["critic"])
            L.critic.load_state_dict(w["critic"])
            if L.value_norm is not None and w["value_norm"] is not None:
                L.value_norm.load_state_dict(w["value_norm"])


# ------------------------------------------------------------------------------------ inference
class TorchActorPolicy(Policy):
    """A PPO-family actor (:class:`marl.networks.Actor`) from a checkpoint, as a :class:`marl.policy.Policy`.

    ``act`` returns discrete actions int64 ``[B, n_branches]`` and continuous ones float32 ``[B, n_cont]``
    already scaled to ``[-1, 1]`` (:func:`marl.policy.scale_continuous`), exactly what the trainer
    writes into the env layer while collecting. A memory (LSTM) actor takes and returns ``hidden``
    float32 ``[B, memory_size]`` (``concat(h, c)``; None or zeros = episode start); others return None.

    Args:
        ck: a checkpoint dict (``marl.checkpoint``) whose ``trainer["actor"]`` is the actor state.
        path: where it came from (reports).

    Raises:
        KeyError / RuntimeError: the state does not match the behavior spec (the loader reports one line).
    """

    def __init__(self, ck: dict, path: Path):
        self.path, self.spec = Path(path), spec_from_dict(ck["behavior_spec"])
        self.name = str(path)
        state = ck["trainer"]["actor"]
        # checkpoints from before the visual encoders have no "encoder.*" weights: flat MLP, as trained
        has_encoder = any(k.startswith("encoder.") for k in state)
        shape = self.spec.obs_shape if has_encoder else None
        sensors = self.spec.sensors if has_encoder else None
        net = NetworkSettings.model_validate(ck["network_settings"])
        # the id width is read from the weights (checkpoints before the agent_id setting always had ids)
        scale = self.spec.obs_scale
        self.actor = Actor(self.spec.obs_size, self.spec.n_agents, self.spec.action, net, shape, sensors, scale)
        try:
            self.actor.load_state_dict(state)
        except RuntimeError:
            self.actor = Actor(self.spec.obs_size, 0, self.spec.action, net, shape, sensors, scale)
            self.actor.load_state_dict(state)
        self.actor.eval()

    @property
    def takes_agent_id(self) -> bool:
        return self.actor.n_agents > 1

    @torch.inference_mode()
    def act(self, obs, agent_index, mask=None, hidden=None, deterministic=True, game_states=None):
        o = torch.as_tensor(np.asarray(obs, np.float32)).reshape(len(agent_index), -1)
        ids = F.one_hot(torch.as_tensor(np.asarray(agent_index), dtype=torch.int64),
                        self.spec.n_agents).float()[:, : self.actor.n_agents]
        m = None if mask is None else torch.as_tensor(np.asarray(mask, np.float32))
        if self.actor.memory_size:  # memory policy: hidden = concat(h, c) [B, memory_size], None = episode start
            mem = (torch.zeros(len(o), self.actor.memory_size) if hidden is None
                   else torch.as_tensor(np.asarray(hidden, np.float32)).reshape(len(o), -1))
            d, c, _, mem = self.actor.act_recurrent(o, ids, m, mem, deterministic=deterministic)
            new_hidden = mem.numpy()
        else:
            d, c, _ = self.actor.act(o, ids, m, deterministic=deterministic)
            new_hidden = None
        return (None if d is None else d.numpy(), None if c is None else scale_continuous(c).numpy(), new_hidden)


def load_policy(ck: dict, path: Path) -> TorchActorPolicy:
    """The registry's policy loader for ``mappo`` / ``ippo`` checkpoints."""
    return TorchActorPolicy(ck, path)


def widen_learner_state(learner: PPOLearner, state: dict, old_env: EnvSpec, new_env: EnvSpec) -> dict:
    """A :meth:`PPOLearner.state_dict` saved when the env had fewer agent slots (``old_env``) made loadable by
    ``learner`` (built for ``new_env``, as many or more slots per team: slot growth, :mod:`marl.grow`).

    What depends on the slots, widened function-preservingly (:func:`marl.grow.widen_module_state`):

    * the one-hot agent id (actor and critic, when ``n_ids > 0``): old slot ``j``'s column moves to its new
      index (:func:`marl.grow.slot_map`; team-major order moves the later teams' slots), new slots' columns
      get zero weights;
    * MAPPO's centralised critic on a state of every slot's observation (``EnvSpec.state_is_obs``): the
      first layer's columns of each slot's (encoded, :class:`marl.networks.StateEncoder`) observation move
      with the slot, new slots' columns are zero, so ``V`` of the old slots is unchanged whatever the new
      slots observe (until training changes those weights);
    * the Adam moments of those tensors (new columns start at zero, as in a fresh optimiser; the rest and
      the step counts are kept). Value normaliser and per-sensor encoders do not depend on the slots.

    Exact when the first dense layer has no LayerNorm on its inputs (``network_settings.layer_norm: false``)
    or nothing widens (a Unity actor has no agent id by default, so it is always unchanged); with an input
    LayerNorm its statistics also average the new zero columns and the widened network's outputs move.

    Args:
        learner: the new learner (its networks give the new shapes; a critic saved before the per-agent state
            encoder is first rebuilt flat, :meth:`PPOLearner.fit_critic`).
        state: the old learner's state (``actor``, ``critic``, ``actor_opt``, ``critic_opt``, ``value_norm``).
        old_env, new_env: the env specs before and after growth (same behaviors, same order).

    Returns:
        a new state dict (``state`` is not modified).

    Raises:
        marl.grow.GrowError: a team lost slots, or a tensor changed shape in another way.
    """
    from marl import grow
    from marl.networks import StateEncoder

    name = learner.spec.name
    old_b = old_env.behavior(name)

    def ids_segment():
        if not learner.n_ids:
            return grow.identity_columns(0)
        return grow.slot_columns(1, old_b.n_agents, learner.spec.n_agents, grow.slot_map(old_b, learner.spec))

    def first_in(net) -> int:
        return next(m for m in net.body if isinstance(m, torch.nn.Linear)).in_features

    actor_cols = grow.join_columns(grow.identity_columns(first_in(learner.actor) - learner.n_ids), ids_segment())
    learner.fit_critic(state["critic"])
    critic = learner.critic
    if learner.centralised and new_env.state_is_obs:
        enc = critic.encoder if isinstance(critic.encoder, StateEncoder) else None
        segments = []
        for k, b in enumerate(new_env.behaviors):
            if enc is None:
                width = b.obs_size
            else:
                sub = enc.encoders[k]
                width = enc.blocks[k][1] if isinstance(sub, torch.nn.Identity) else sub.out_size
            ob = old_env.behavior(b.name)
            segments.append(grow.slot_columns(width, ob.n_agents, b.n_agents, grow.slot_map(ob, b)))
        critic_cols = grow.join_columns(*segments, ids_segment())
    else:
        critic_cols = grow.join_columns(grow.identity_columns(first_in(critic) - learner.n_ids), ids_segment())
    out = dict(state)
    out["actor"] = grow.widen_module_state(learner.actor, state["actor"], actor_cols)
    out["critic"] = grow.widen_module_state(critic, state["critic"], critic_cols)
    if state.get("actor_opt") is not None:
        out["actor_opt"] = grow.widen_adam_state(state["actor_opt"], learner.actor, state["actor"], actor_cols)
    if state.get("critic_opt") is not None:
        out["critic_opt"] = grow.widen_adam_state(state["critic_opt"], critic, state["critic"], critic_cols)
    return out
