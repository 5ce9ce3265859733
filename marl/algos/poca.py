"""MA-POCA: an attention critic over a group whose members come and go, with counterfactual baselines.

References:
    Cohen et al. 2022, "On the Use and Misuse of Absorbing States in Multi-agent Reinforcement
    Learning" (MA-POCA); ML-Agents ``mlagents/trainers/poca/`` (``trainer.py``, ``optimizer_torch.py``)
    and ``torch_entities/networks.py`` (``MultiAgentNetworkBody``), ``attention.py``
    (``ResidualSelfAttention``, ``EntityEmbedding``).

What happens, as in ML-Agents unless noted:

* **Groups.** A group is the agents of one behavior and one team in one env copy (Unity's
  ``SimpleMultiAgentGroup`` / ``group_id`` maps to it; for PettingZoo the behavior's agents, or
  with ``behavior_map`` several agent kinds merged into one behavior). A member is *present* while
  it is alive in the episode; members that died (terminated) are simply absent.
* **Critic.** Each present member's observation is encoded (the per-sensor encoder of our other
  trainers), embedded (``EntityEmbedding``: linear + Swish), pooled by residual self-attention over
  the present members only (``ResidualSelfAttention``, 4 heads, masked mean), then dense layers;
  the normalised member count ``2 n / N_max - 1`` is appended before the head. ``V`` sees every
  present member's observation; the counterfactual baseline ``b_i`` sees member ``i``'s
  observation and the other present members' observation-action pairs (actions as one-hot
  discrete branches and raw continuous values). The group can grow and shrink freely.
* **Rewards.** Each member is credited every step with the group's reward: ``group_reward: sum``
  (ML-Agents' own + groupmates' rewards) or ``mean`` of what the group's present members received.
* **Departed members.** A member that leaves while its group plays on ends its trajectory by
  bootstrapping from ``V`` of the remaining group (ML-Agents' ``next_group_obs``), so rewards the
  group earns after it left still reach its last decisions; a member whose whole group ended gets
  no bootstrap (terminated) or ``V`` of the group's final observations (truncated).
* **Targets.** lambda-returns of ``V`` (``returns = GAE + V``, which is ML-Agents' ``lambda_return``),
  advantage ``A_i = return_i - b_i`` normalised over the rollout; loss ``policy + 0.5 (value +
  0.5 baseline) - beta entropy`` with clipped value and baseline losses around their old estimates;
  one Adam over actor and critic; learning rate, beta and epsilon decay as ML-Agents'.
* **Trajectory cuts.** Like our other trainers, trajectories are cut at rollout boundaries
  (``buffer_size``) and bootstrapped there from ``V``; ML-Agents cuts them every ``time_horizon``
  steps instead (the same bootstrapping, at other places).
* **Policy.** The shared actor of our other trainers, without the agent-id input unless
  ``network_settings.agent_id: true`` (ML-Agents' POCA has none); exported as the same ONNX brain.

Not yet: ``network_settings.memory`` with POCA (refused in one line).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from envs.spec import BehaviorSpec, EnvSpec
from marl.algos.base import ActorCriticTrainer
from marl.algos.mappo import decayed
from marl.buffers import RolloutBuffer, compact_buffer, gae, merge_buffers
from marl.config import BehaviorSettings, ConfigError, POCAHyperparameters, RunConfig
from marl.networks import Actor, make_encoder, scale_input
from marl.play import act_rows
from marl.policy import Policy, scale_continuous


# ------------------------------------------------------------------------------------ attention critic
def _ml_linear(n_in: int, n_out: int, gain: float) -> nn.Linear:
    """ML-Agents' ``linear_layer(kernel_init=Normal, kernel_gain=gain)``: N(0, 1) weights times ``gain``, zero bias."""
    layer = nn.Linear(n_in, n_out)
    nn.init.normal_(layer.weight)
    with torch.no_grad():
        layer.weight.mul_(gain)
    nn.init.zeros_(layer.bias)
    return layer


def _norm(x: torch.Tensor) -> torch.Tensor:
    """ML-Agents' parameter-free ``LayerNorm``: ``(x - mean) / sqrt(var + 1e-5)`` over the last axis."""
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5)


class ResidualSelfAttention(nn.Module):
    """ML-Agents' ``ResidualSelfAttention``: multi-head self-attention over entities with a residual
    connection, then the mean over the entities that are not masked.

    ``forward(x [B, N, h], absent bool [B, N]) -> [B, h]``.
    """

    def __init__(self, h: int, heads: int = 4):
        super().__init__()
        if h % heads:
            raise ConfigError(f"network_settings.hidden_units ({h}) must be a multiple of {heads} for MA-POCA's "
                              "4-head attention")
        self.h, self.heads = h, heads
        gain = (0.125 / h) ** 0.5
        self.q, self.k, self.v, self.out = (_ml_linear(h, h, gain) for _ in range(4))

    def forward(self, x: torch.Tensor, absent: torch.Tensor) -> torch.Tensor:
        B, N, h = x.shape
        x = _norm(x)
        d = h // self.heads
        q = self.q(x).view(B, N, self.heads, d).transpose(1, 2)
        k = self.k(x).view(B, N, self.heads, d).transpose(1, 2)
        v = self.v(x).view(B, N, self.heads, d).transpose(1, 2)
        m = absent.float()[:, None, None, :]  # mask keys of absent entities
        qk = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        qk = qk * (1.0 - m) - 1e6 * m
        att = torch.softmax(qk, -1) @ v  # [B, heads, N, d]
        out = self.out(att.transpose(1, 2).reshape(B, N, h)) + x
        out = _norm(out)
        keep = (~absent).float().unsqueeze(-1)
        return (out * keep).sum(1) / (keep.sum(1) + 1e-7)


class POCACritic(nn.Module):
    """Value and counterfactual baselines of a group (``MultiAgentNetworkBody`` + value head).

    Args:
        spec: the behavior (each member's observation shape, sensors and actions).
        max_members: ``N``, the group's slots (for the member-count input).
        net: network settings (``hidden_units``, ``num_layers``, ``vis_encode_type``).

    Inputs: ``obs`` float32 ``[B, N, obs_size]``, ``actions`` float32 ``[B, N, act_size]`` (one-hot
    discrete branches, then continuous), ``present`` bool ``[B, N]``. Outputs float32.
    """

    def __init__(self, spec: BehaviorSpec, max_members: int, net):
        super().__init__()
        h = net.hidden_units
        self.encoder = make_encoder(spec.obs_shape, net, spec.sensors, warn=False)  # the actor's encoder warns
        enc = self.encoder.out_size if self.encoder is not None else spec.obs_size
        self.act_size = sum(spec.action.discrete_branches) + spec.action.continuous_size
        gain = (0.125 / h) ** 0.5
        self.obs_embed = nn.Sequential(_ml_linear(enc, h, gain), nn.SiLU())
        self.obs_act_embed = nn.Sequential(_ml_linear(enc + self.act_size, h, gain), nn.SiLU())
        self.attention = ResidualSelfAttention(h)
        layers: list[nn.Module] = []
        for _ in range(net.num_layers):
            layers += [_ml_linear(h, h, gain), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(h + 1, 1)
        self.max_members = max_members
        self.obs_scale = spec.obs_scale  # 1/255 for observations stored as uint8

    def _encode(self, obs: torch.Tensor) -> torch.Tensor:
        B, N = obs.shape[:2]
        flat = scale_input(obs.reshape(B * N, -1), self.obs_scale)
        e = self.encoder(flat) if self.encoder is not None else flat
        return e.reshape(B, N, -1)

    def _head(self, pooled: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        n = present.float().sum(-1, keepdim=True) * 2.0 / self.max_members - 1.0
        return self.head(torch.cat([self.body(pooled), n], -1)).squeeze(-1)

    def value(self, obs: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """``V`` ``[B]`` from every present member's observation."""
        e = self.obs_embed(self._encode(obs))
        return self._head(self.attention(e, ~present), present)

    def baseline(self, obs: torch.Tensor, actions: torch.Tensor, present: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
        """``b_i`` ``[B]`` for member ``member`` int64 ``[B]``: its observation and the other present members'
        observation-action pairs."""
        enc = self._encode(obs)
        eo = self.obs_embed(enc)
        ea = self.obs_act_embed(torch.cat([enc, actions], -1))
        me = F.one_hot(member, obs.shape[1]).bool().unsqueeze(-1)  # [B, N, 1]
        return self._head(self.attention(torch.where(me, eo, ea), ~present), present)


# ------------------------------------------------------------------------------------ learner
@dataclass
class GroupLayout:
    """Slots of one behavior grouped by team: ``slots`` int64 ``[G, N]`` (-1 = padding), ``of_slot``
    int64 ``[A]`` (its group), ``pos`` int64 ``[A]`` (its position in the group)."""

    slots: np.ndarray
    of_slot: np.ndarray
    pos: np.ndarray

    @classmethod
    def of(cls, spec: BehaviorSpec) -> "GroupLayout":
        teams = list(spec.teams) if spec.teams else [0] * spec.n_agents
        ids = sorted(set(teams))
        members = [[i for i, t in enumerate(teams) if t == g] for g in ids]
        n = max(len(m) for m in members)
        slots = np.full((len(ids), n), -1, np.int64)
        of_slot, pos = np.zeros(spec.n_agents, np.int64), np.zeros(spec.n_agents, np.int64)
        for g, m in enumerate(members):
            slots[g, : len(m)] = m
            of_slot[m], pos[m] = g, np.arange(len(m))
        return cls(slots, of_slot, pos)


def one_hot_actions(spec: BehaviorSpec, d: torch.Tensor | None, c: torch.Tensor | None) -> torch.Tensor:
    """ML-Agents' ``AgentAction.to_flat``: one-hot of each discrete branch, then the continuous values.
    ``d`` int64 ``[..., n_branches]``, ``c`` float32 ``[..., n_cont]`` -> float32 ``[..., act_size]``."""
    parts = []
    if d is not None:
        parts += [F.one_hot(d[..., k].clamp(min=0), n).float() for k, n in enumerate(spec.action.discrete_branches)]
    if c is not None:
        parts.append(c)
    return torch.cat(parts, -1)


class POCALearner:
    """One behavior's actor, attention critic and optimiser (learning from a recorded :class:`POCARollout`).

    Args:
        spec: the behavior; settings: its YAML settings; n_envs: env copies ``E``; device: torch device.

    Raises:
        ConfigError: ``network_settings.memory`` (not yet with POCA), hidden units not a multiple of 4.
    """

    def __init__(self, spec: BehaviorSpec, settings: BehaviorSettings, n_envs: int, device: torch.device):
        net = settings.network_settings
        if net.memory is not None:
            raise ConfigError(f"behaviors.{spec.name}.network_settings.memory: memory is not supported with "
                              "trainer_type poca yet; remove it or use mappo/ippo")
        self.spec, self.settings, self.device, self.E = spec, settings, device, n_envs
        self.hp: POCAHyperparameters = settings.hp
        self.gamma = settings.reward_signals.extrinsic.gamma
        self.strength = settings.reward_signals.extrinsic.strength
        A = spec.n_agents
        self.n_ids = A if net.agent_id else 0  # ML-Agents' POCA actor has no agent id
        self.groups = GroupLayout.of(spec)
        self.actor = Actor(spec.obs_size, self.n_ids, spec.action, net, spec.obs_shape, spec.sensors,
                           spec.obs_scale).to(device)
        self.critic = POCACritic(spec, self.groups.slots.shape[1], net).to(device)
        self.opt = torch.optim.Adam([*self.actor.parameters(), *self.critic.parameters()], lr=self.hp.learning_rate)
        self.ids = torch.eye(A, device=device)[:, : self.n_ids].repeat(n_envs, 1)
        self.capacity = math.ceil(self.hp.buffer_size / n_envs) + 1

    # ------------------------------------------------------------------------------ group views
    def group_view(self, obs: torch.Tensor, present: torch.Tensor, actions: torch.Tensor | None = None):
        """Per-slot arrays ``[..., A, ...]`` -> per-group ``[..., G, N, ...]`` (padding absent)."""
        idx = torch.from_numpy(self.groups.slots).to(obs.device)
        safe = idx.clamp(min=0)
        g_obs = obs[..., safe, :]
        g_present = present[..., safe] & (idx >= 0)
        g_act = None if actions is None else actions[..., safe, :]
        return g_obs, g_present, g_act

    @torch.no_grad()
    def slot_values(self, obs: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """``V`` of each slot's group float32 ``[..., A]`` for per-slot ``obs [..., A, O]``, ``present [..., A]``."""
        lead = obs.shape[:-2]
        g_obs, g_present, _ = self.group_view(obs.reshape(-1, *obs.shape[-2:]), present.reshape(-1, present.shape[-1]))
        B, G, N = g_present.shape
        v = self.critic.value(g_obs.reshape(B * G, N, -1), g_present.reshape(B * G, N)).reshape(B, G)
        return v[:, torch.from_numpy(self.groups.of_slot).to(v.device)].reshape(*lead, -1)

    # ------------------------------------------------------------------------------ update
    def update(self, step: int, rollout: "POCARollout") -> dict[str, float]:
        """One MA-POCA update (see the module docstring) on a recorded rollout. Returns ML-Agents' scalars."""
        hp, s = self.hp, self.settings
        buf = rollout.buffer.tensors(self.device)
        T = buf["obs"].shape[0]
        A = self.spec.n_agents
        obs = buf["obs"].reshape(T, self.E, A, -1)
        present = buf["present"]
        acts = one_hot_actions(self.spec, buf.get("act_d"), buf.get("act_c"))  # [T, E, A, K]
        valid = buf["valid"] & torch.from_numpy(rollout.learning).to(self.device)
        with torch.no_grad():
            values = self.slot_values(obs, present) * buf["valid"]  # V of each decision's group [T, E, A]
        adv_all, returns = gae(buf["reward"], values, buf["done"], buf["valid"],
                               torch.as_tensor(rollout.bootstrap, device=self.device), self.gamma, hp.lambd)
        idx = valid.nonzero(as_tuple=True)
        n = idx[0].numel()
        if n == 0:
            return {}
        # each experience's group, its position there, and the group's members at that step
        g_of = torch.from_numpy(self.groups.of_slot).to(self.device)[idx[2]]
        member = torch.from_numpy(self.groups.pos).to(self.device)[idx[2]]
        g_obs, g_present, g_act = self.group_view(obs[idx[0], idx[1]], present[idx[0], idx[1]], acts[idx[0], idx[1]])
        rows = torch.arange(n, device=self.device)
        g_obs, g_present, g_act = g_obs[rows, g_of], g_present[rows, g_of], g_act[rows, g_of]  # [n, N, ...]
        x = obs[idx].reshape(n, -1)
        ids = F.one_hot(idx[2], A).float()[:, : self.n_ids]
        mask = buf["mask"][idx] if "mask" in buf else None
        act_d = buf["act_d"][idx] if "act_d" in buf else None
        act_c = buf["act_c"][idx] if "act_c" in buf else None
        old_logp, ret = buf["logp"][idx], returns[idx]
        with torch.no_grad():
            old_v = self.critic.value(g_obs, g_present)
            old_b = torch.cat([self.critic.baseline(g_obs[i:i + 4096], g_act[i:i + 4096], g_present[i:i + 4096],
                                                    member[i:i + 4096]) for i in range(0, n, 4096)])
        a = ret - old_b  # counterfactual advantage
        a = (a - a.mean()) / (a.std() + 1e-10) if n > 1 else a
        if self.actor.obs_norm is not None:
            self.actor.update_obs_norm(x)

        lr = decayed(hp.learning_rate_schedule, hp.learning_rate, 1e-10, step, s.max_steps)
        beta = decayed(hp.beta_schedule or hp.learning_rate_schedule, hp.beta, 1e-5, step, s.max_steps)
        eps = decayed(hp.epsilon_schedule or hp.learning_rate_schedule, hp.epsilon, 0.1, step, s.max_steps)
        for g in self.opt.param_groups:
            g["lr"] = lr
        batch = min(hp.batch_size, n)
        sums = torch.zeros(4, device=self.device)
        n_mb = 0
        for _ in range(hp.num_epoch):
            for mb in torch.randperm(n, device=self.device).split(batch):
                if mb.numel() != batch:
                    continue
                logp, ent = self.actor.evaluate(x[mb], ids[mb], None if mask is None else mask[mb],
                                                None if act_d is None else act_d[mb], None if act_c is None else act_c[mb])
                ratio = torch.exp(logp - old_logp[mb])
                policy_loss = -torch.min(ratio * a[mb], torch.clamp(ratio, 1 - eps, 1 + eps) * a[mb]).mean()
                v = self.critic.value(g_obs[mb], g_present[mb])
                b = self.critic.baseline(g_obs[mb], g_act[mb], g_present[mb], member[mb])

                def clipped(est, old):
                    est_c = old + torch.clamp(est - old, -eps, eps)
                    return torch.max((ret[mb] - est) ** 2, (ret[mb] - est_c) ** 2).mean()

                value_loss, baseline_loss = clipped(v, old_v[mb]), clipped(b, old_b[mb])
                entropy = ent.mean()
                loss = policy_loss + 0.5 * (value_loss + 0.5 * baseline_loss) - beta * entropy
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                if hp.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_([*self.actor.parameters(), *self.critic.parameters()], hp.max_grad_norm)
                self.opt.step()
                sums += torch.stack([policy_loss.detach().abs(), value_loss.detach(), baseline_loss.detach(),
                                     entropy.detach()])
                n_mb += 1
        pl, vl, bl, en = (sums / max(n_mb, 1)).tolist()
        return {"Losses/Policy Loss": pl, "Losses/Value Loss": vl, "Losses/Baseline Loss": bl, "Policy/Entropy": en,
                "Policy/Learning Rate": lr, "Policy/Beta": beta, "Policy/Epsilon": eps,
                "Policy/Extrinsic Value Estimate": float(old_v.mean()),
                "Policy/Extrinsic Baseline Estimate": float(old_b.mean())}

    # ------------------------------------------------------------------------------ state
    def widened_state(self, state: dict, old_env, new_env) -> dict:
        """``state`` (saved for ``old_env``'s slots) widened to this learner's slots: :func:`widen_learner_state`."""
        return widen_learner_state(self, state, old_env, new_env)

    def state_dict(self) -> dict:
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict, weights_only: bool = False) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        if not weights_only:
            self.opt.load_state_dict(state["opt"])


# ------------------------------------------------------------------------------------ acting
@dataclass
class POCARollout:
    """One behavior's recorded experience (numpy): the buffer (``obs``, ``present``, actions, ``logp``,
    credited rewards, dones, valid), ``learning`` bool ``[E, A]``, ``bootstrap`` float32 ``[E, A]``, and the
    returns of the groups whose episodes finished (``Environment/Group Cumulative Reward``)."""

    buffer: RolloutBuffer
    learning: np.ndarray
    bootstrap: np.ndarray
    group_returns: list = field(default_factory=list)


class POCACollector:
    """Acting apart from learning for MA-POCA: one batched actor forward per behavior and step; records
    every slot's observation, action and presence (the critic sees the whole group), credits each
    present member with its group's reward, and bootstraps a departing member from ``V`` of the
    remaining group. Opponent slots (self-play) act through the :class:`marl.policy.Policy` interface.
    """

    def __init__(self, learners: dict[str, POCALearner], n_envs: int):
        self.learners, self.E = learners, n_envs
        self.buffers: dict[str, RolloutBuffer] = {}
        self.learning: dict[str, np.ndarray] = {}
        self.opponents: dict[str, tuple[np.ndarray, Policy | None]] = {}
        self.group_returns: dict[str, np.ndarray] = {}  # running sum of each group's reward [E, G]
        self.finished_group_returns: dict[str, list[float]] = {}
        for name, L in learners.items():
            spec = L.spec
            fields = {"obs": (spec.obs_shape, np.dtype(spec.obs_dtype)), "logp": ((), np.dtype(np.float32)),
                      "present": ((), np.dtype(np.bool_))}
            if spec.action.is_discrete:
                fields["mask"] = ((spec.action.mask_size,), np.dtype(np.float32))
                fields["act_d"] = ((len(spec.action.discrete_branches),), np.dtype(np.int64))
            if spec.action.continuous_size:
                fields["act_c"] = ((spec.action.continuous_size,), np.dtype(np.float32))
            self.buffers[name] = RolloutBuffer(L.capacity, n_envs, spec.n_agents, fields)
            self.learning[name] = np.ones((n_envs, spec.n_agents), np.bool_)
            self.group_returns[name] = np.zeros((n_envs, L.groups.slots.shape[0]), np.float64)
            self.finished_group_returns[name] = []

    def set_opponents(self, behavior: str, slots: np.ndarray, policy: Policy | None) -> None:
        slots = np.asarray(slots, np.bool_)
        self.learning[behavior][...] = ~slots[None, :]
        self.opponents[behavior] = (slots, policy)

    @torch.inference_mode()
    def act(self, arrays: dict[str, np.ndarray]) -> None:
        for name, L in self.learners.items():
            b, buffer, A = L.spec, self.buffers[name], L.spec.n_agents
            obs_np = arrays[f"{name}/obs"]
            obs = torch.from_numpy(obs_np).reshape(self.E * A, -1).to(L.device)
            mask_np = arrays.get(f"{name}/mask")
            mask = torch.from_numpy(mask_np).reshape(self.E * A, -1).to(L.device) if mask_np is not None else None
            d, c, logp = L.actor.act(obs, L.ids, mask)
            row = {"obs": obs_np, "logp": logp.view(self.E, A).cpu().numpy(), "present": arrays[f"{name}/alive"]}
            if d is not None:
                d_np = d.view(self.E, A, -1).cpu().numpy()
                arrays[f"{name}/act_d"][...] = d_np
                row["act_d"], row["mask"] = d_np, mask_np
            if c is not None:
                c_np = c.view(self.E, A, -1).cpu().numpy()
                arrays[f"{name}/act_c"][...] = scale_continuous(c_np)
                row["act_c"] = c_np
            opp = self.opponents.get(name)
            if opp is not None and opp[1] is not None:
                act_rows(opp[1], arrays, b, arrays[f"{name}/active"] & opp[0][None, :], deterministic=False)
            buffer.add_decisions(arrays[f"{name}/active"] & self.learning[name], **row)

    @torch.inference_mode()
    def after_step(self, arrays: dict[str, np.ndarray], finished: set[int], present_before: dict[str, np.ndarray]) -> None:
        """Credit group rewards; end departing members' trajectories (bootstrapping from the remaining group)."""
        for name, L in self.learners.items():
            buffer, hp, A = self.buffers[name], L.hp, L.spec.n_agents
            gl = L.groups
            rew = arrays[f"{name}/reward"].astype(np.float64)
            was = present_before[name]  # members present during this step [E, A]
            G = gl.slots.shape[0]
            g_sum = np.zeros((self.E, G))
            g_cnt = np.zeros((self.E, G))
            np.add.at(g_sum, (slice(None), gl.of_slot), rew * was)
            np.add.at(g_cnt, (slice(None), gl.of_slot), was.astype(np.float64))
            g_rew = g_sum if hp.group_reward == "sum" else g_sum / np.maximum(g_cnt, 1)
            self.group_returns[name] += g_rew
            credit = (g_rew[:, gl.of_slot] * L.strength).astype(np.float32)  # [E, A]
            buffer.add_reward(credit)
            term, trunc = arrays[f"{name}/terminated"], arrays[f"{name}/truncated"]
            ended = term | trunc
            if ended.any():
                boot = np.zeros((self.E, A), np.float32)
                fin = np.fromiter((e in finished for e in range(self.E)), bool, self.E)
                # members leaving while their group plays on: V of the remaining group (now)
                alive = arrays[f"{name}/alive"] & ~fin[:, None]
                group_alive = np.zeros((self.E, G), bool)
                np.logical_or.at(group_alive, (slice(None), gl.of_slot), alive)
                leaving = ended & group_alive[:, gl.of_slot]
                if leaving.any():
                    v = L.slot_values(torch.from_numpy(arrays[f"{name}/obs"].reshape(self.E, A, -1)).to(L.device),
                                      torch.from_numpy(alive).to(L.device)).cpu().numpy()
                    boot = np.where(leaving, L.gamma * v, boot)
                # a group cut by the time limit: V of its members' final observations
                cut = trunc & ~leaving
                if cut.any():
                    v = L.slot_values(torch.from_numpy(arrays[f"{name}/final_obs"].reshape(self.E, A, -1)).to(L.device),
                                      torch.from_numpy(trunc | was & ~term).to(L.device)).cpu().numpy()
                    boot = np.where(cut, L.gamma * v, boot)
                buffer.end_episodes(ended, boot)
            for e in finished:
                self.finished_group_returns[name].extend(self.group_returns[name][e].tolist())
                self.group_returns[name][e] = 0.0

    def collect(self, venv, step: int, on_episode=None, on_step=None) -> tuple[int, dict[str, POCARollout], float]:
        arrays = venv.arrays
        for buffer in self.buffers.values():
            buffer.reset()
        t, t_env = 0, 0.0
        while True:
            self.act(arrays)
            before = {n: arrays[f"{n}/alive"].copy() for n in self.learners}
            t0 = time.perf_counter()
            finished = venv.step()
            t_env += time.perf_counter() - t0
            if on_episode is not None:
                for e, stats in finished:
                    on_episode(e, stats)
            if on_step is not None:
                on_step(arrays, finished, step + (t + 1) * self.E)
            self.after_step(arrays, {e for e, _ in finished}, before)
            t += 1
            if all(self.buffers[n].count >= L.hp.buffer_size or self.buffers[n].t >= L.capacity
                   for n, L in self.learners.items()):
                break
        out = {}
        with torch.inference_mode():
            for n, L in self.learners.items():
                A = L.spec.n_agents
                v = L.slot_values(torch.from_numpy(arrays[f"{n}/obs"].reshape(self.E, A, -1)).to(L.device),
                                  torch.from_numpy(arrays[f"{n}/alive"]).to(L.device)).cpu().numpy()
                out[n] = POCARollout(self.buffers[n], self.learning[n].copy(), v.astype(np.float32))
        return t * self.E, out, t_env


class POCATrainer(ActorCriticTrainer):
    """MA-POCA (``trainer_type: poca``) over all behaviors of an env (see the module docstring).

    Args:
        spec: the env; cfg: the run config; n_envs: env copies ``E``; device: torch device.
    """

    def __init__(self, spec: EnvSpec, cfg: RunConfig, n_envs: int, device: torch.device):
        self.spec, self.cfg, self.device, self.E = spec, cfg, device, n_envs
        self.learners = {b.name: POCALearner(b, cfg.behavior_settings(b.name), n_envs, device) for b in spec.behaviors}
        self.collector = POCACollector(self.learners, n_envs)
        self.timing = (0.0, 0.0)

    def collect_and_train(self, venv, step: int, on_episode=None, on_step=None) -> tuple[int, dict[str, dict[str, float]]]:
        steps, rollouts, t_env = self.collect(venv, step, on_episode, on_step)
        t0 = time.perf_counter()
        logs = self.learn(step, steps, rollouts)
        self.timing = (self.timing[0] + t_env, self.timing[1] + time.perf_counter() - t0)
        return steps, logs

    def collect(self, venv, step: int, on_episode=None, on_step=None):
        steps, rollouts, t_env = self.collector.collect(venv, step, on_episode, on_step)
        for name, r in rollouts.items():  # finished groups' returns travel with the batch
            r.group_returns = list(self.collector.finished_group_returns[name])
            self.collector.finished_group_returns[name].clear()
        return steps, rollouts, t_env

    def learn(self, step: int, steps: int, batch: dict) -> dict[str, dict[str, float]]:
        logs: dict[str, dict[str, float]] = {}
        for name, L in self.learners.items():
            if step < L.settings.max_steps:
                logs[name] = L.update(step + steps, batch[name])
            if batch[name].group_returns:
                logs.setdefault(name, {})["Environment/Group Cumulative Reward"] = float(np.mean(batch[name].group_returns))
        return logs

    def merge(self, batches: list[dict]) -> dict:
        out = {}
        for name in self.learners:
            parts = [b[name] for b in batches]
            out[name] = POCARollout(merge_buffers([p.buffer for p in parts]), np.concatenate([p.learning for p in parts]),
                                    np.concatenate([p.bootstrap for p in parts]),
                                    [g for p in parts for g in p.group_returns])
        return out

    def compact(self, batch: dict) -> dict:
        return {n: POCARollout(compact_buffer(r.buffer), r.learning.copy(), r.bootstrap.copy(), list(r.group_returns))
                for n, r in batch.items()}

    def weights(self) -> dict:
        def cpu(sd):
            return {k: v.detach().cpu() for k, v in sd.items()}

        return {n: {"actor": cpu(L.actor.state_dict()), "critic": cpu(L.critic.state_dict())}
                for n, L in self.learners.items()}

    def load_weights(self, weights: dict) -> None:
        for n, w in weights.items():
            self.learners[n].actor.load_state_dict(w["actor"])
            self.learners[n].critic.load_state_dict(w["critic"])


def widen_learner_state(learner: POCALearner, state: dict, old_env: EnvSpec, new_env: EnvSpec) -> dict:
    """A :meth:`POCALearner.state_dict` saved when the env had fewer agent slots (``old_env``) made loadable by
    ``learner`` (built for ``new_env``: slot growth, :mod:`marl.grow`), computing what it computed before.

    * The attention critic takes any number of members; only its member-count input ``2 n / N - 1`` depends
      on the group size ``N`` (the most slots of a team): the head's weight on it is scaled by ``N' / N``
      and its bias moved by the difference, so ``V`` and the baselines of a group are unchanged.
    * An actor with agent ids (``network_settings.agent_id: true``) has old slot ``j``'s id column moved to
      its new index and zero columns for new slots (:func:`marl.grow.widen_module_state`; exact without an
      input LayerNorm), with the Adam moments widened alike (new columns start at zero). Without ids (the
      default) the actor is unchanged.

    Args:
        learner: the new learner; state: the old one's (``actor``, ``critic``, ``opt``); old_env, new_env: the
            env specs before and after growth.

    Returns:
        a new state dict (``state`` is not modified).

    Raises:
        marl.grow.GrowError: a team lost slots, or a tensor changed shape in another way.
    """
    from marl import grow

    old_b = old_env.behavior(learner.spec.name)
    body_in = next(m for m in learner.actor.body if isinstance(m, nn.Linear)).in_features
    ids = (grow.slot_columns(1, old_b.n_agents, learner.spec.n_agents, grow.slot_map(old_b, learner.spec))
           if learner.n_ids else grow.identity_columns(0))
    cols = grow.join_columns(grow.identity_columns(body_in - learner.n_ids), ids)
    out = dict(state)
    out["actor"] = grow.widen_module_state(learner.actor, state["actor"], cols)
    critic = {k: v.clone() for k, v in state["critic"].items()}
    n_old, n_new = int(GroupLayout.of(old_b).slots.shape[1]), int(learner.critic.max_members)
    w = critic["head.weight"][:, -1].clone()  # the member count is the head's last input
    critic["head.weight"][:, -1] = w * (n_new / n_old)
    critic["head.bias"] = critic["head.bias"] + critic["head.weight"][:, -1] - w
    out["critic"] = critic
    if state.get("opt") is not None:
        out["opt"] = grow.widen_adam_state(state["opt"], learner.actor, state["actor"], cols)
    return out
