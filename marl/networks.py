"""Actor and critic networks shared by the policy-gradient trainers (MAPPO, IPPO).

Design choices follow the official MAPPO code (marlbenchmark/on-policy, Yu et al. 2022):
MLP blocks ``Linear -> activation -> LayerNorm``, optional LayerNorm on the inputs
(``use_feature_normalization``), orthogonal initialisation with gain ``sqrt(2)`` for hidden
layers, ``0.01`` for the policy head and ``1`` for the value head. The agent index enters as a
one-hot vector appended to the observation (parameter sharing with agent ids, §"Parameter
sharing"). Continuous actions use a diagonal Gaussian with a state-independent learned log-std.

Image observations (a behavior whose observation is one ``[C, H, W]`` sensor) go through
ML-Agents' visual encoders (``network_settings.vis_encode_type``; ML-Agents
``mlagents/trainers/torch_entities/encoders.py``): ``simple``, ``nature_cnn``, ``resnet``,
``match3`` (small boards) or ``fully_connected``. An image smaller than the chosen encoder's
minimum (simple 20, nature_cnn 36, resnet 15, match3 5 pixels; ML-Agents raises instead) is
flattened into the MLP with a one-line warning. Agents with several sensors get one encoder per
sensor (:class:`ObservationEncoder`: images through the visual encoder, vectors as they are).
MAPPO's critic on a state that is every agent's observation concatenated (no ``env.state()``: Unity)
encodes each agent's part the same way when it holds an image (:class:`StateEncoder`), so no raw
pixels reach its dense layers.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.distributions import Normal

from envs.spec import ActionSpec
from marl.config import NetworkSettings
from marl.normalization import RunningMeanStd


def _init(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


MIN_RESOLUTION = {"simple": 20, "nature_cnn": 36, "resnet": 15, "match3": 5, "fully_connected": 1}


class _ResBlock(nn.Module):
    """ML-Agents ``ResNetBlock``: ``x + conv(swish(conv(swish(x))))`` with 3x3 convs."""

    def __init__(self, ch: int):
        super().__init__()
        self.net = nn.Sequential(nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class VisualEncoder(nn.Module):
    """ML-Agents' visual encoders: ``[B, C*H*W]`` flat float32 (CHW order) -> ``[B, hidden_units]``.

    * ``simple``: conv 16 8x8/4, conv 32 4x4/2 (``SimpleVisualEncoder``);
    * ``nature_cnn``: conv 32 8x8/4, 64 4x4/2, 64 3x3/1 (Mnih et al. 2015; ``NatureVisualEncoder``);
    * ``resnet``: 3 stacks [16, 32, 32] of conv 3x3, max-pool 3x3/2 (no padding), 2 residual
      blocks, then Swish (Espeholt et al. 2018, IMPALA; ``ResNetVisualEncoder``);
    * ``match3``: conv 35 3x3, conv 144 3x3 (``SmallVisualEncoder``, for boards of 5x5 and up);
    * ``fully_connected``: flatten only;

    each followed by ``Linear(-> hidden_units)`` (Kaiming-normal init x 1.41) and LeakyReLU
    (ResNet: ReLU), as in ML-Agents. Input images are channel-first (CHW), as Unity 3.x and
    OpenSpiel send them.

    Raises:
        ValueError: unknown ``kind``, or an image too small for the encoder's convolutions.
    """

    def __init__(self, shape: tuple[int, int, int], kind: str, hidden: int):
        super().__init__()
        self.shape = tuple(int(x) for x in shape)
        c = self.shape[0]
        lrelu = nn.LeakyReLU
        if kind == "simple":
            conv = [nn.Conv2d(c, 16, 8, 4), lrelu(), nn.Conv2d(16, 32, 4, 2), lrelu()]
        elif kind == "nature_cnn":
            conv = [nn.Conv2d(c, 32, 8, 4), lrelu(), nn.Conv2d(32, 64, 4, 2), lrelu(), nn.Conv2d(64, 64, 3, 1), lrelu()]
        elif kind == "match3":
            conv = [nn.Conv2d(c, 35, 3, 1), lrelu(), nn.Conv2d(35, 144, 3, 1), lrelu()]
        elif kind == "resnet":
            conv, ch_in = [], c
            for ch in (16, 32, 32):
                conv += [nn.Conv2d(ch_in, ch, 3, padding=1), nn.MaxPool2d(3, 2), _ResBlock(ch), _ResBlock(ch)]
                ch_in = ch
            conv.append(nn.SiLU())
        elif kind == "fully_connected":
            conv = []
        else:
            raise ValueError(f"network_settings.vis_encode_type: unknown encoder '{kind}'")
        self.conv = nn.Sequential(*conv, nn.Flatten())
        try:
            with torch.no_grad():
                flat = self.conv(torch.zeros(1, *self.shape)).shape[1]
        except RuntimeError:
            raise ValueError(f"network_settings.vis_encode_type: image {self.shape} is too small for '{kind}'") from None
        dense = nn.Linear(flat, hidden)
        nn.init.kaiming_normal_(dense.weight)
        with torch.no_grad():
            dense.weight.mul_(1.41)
        nn.init.zeros_(dense.bias)
        self.dense = nn.Sequential(dense, nn.ReLU() if kind == "resnet" else lrelu())
        self.out_size = hidden

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.dense(self.conv(obs.reshape(obs.shape[0], *self.shape)))


class ObservationEncoder(nn.Module):
    """ML-Agents' ``ObservationEncoder`` for agents with several sensors: one encoder per sensor,
    encodings concatenated (``mlagents/trainers/torch_entities/networks.py``).

    Input: the flat observation float32 ``[B, sum(sensor sizes)]`` (sensors flattened and
    concatenated in sensor order, as the env layer writes them). Image sensors ``[C, H, W]`` go
    through :class:`VisualEncoder` (``hidden_units`` features each); vector sensors pass through as
    they are. Output float32 ``[B, out_size]``.
    """

    def __init__(self, sensors: tuple[tuple[int, ...], ...], net: NetworkSettings):
        super().__init__()
        self.sizes = [int(torch.Size(s).numel()) for s in sensors]
        encs: list[nn.Module] = []
        self.out_size = 0
        for shape in sensors:
            if _image_ok(shape, net):
                encs.append(VisualEncoder(tuple(shape), net.vis_encode_type, net.hidden_units))
                self.out_size += net.hidden_units
            else:
                encs.append(nn.Identity())
                self.out_size += int(torch.Size(shape).numel())
        self.encoders = nn.ModuleList(encs)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        parts = torch.split(obs, self.sizes, dim=1)
        return torch.cat([enc(p) for enc, p in zip(self.encoders, parts)], -1)


def _image_ok(shape: tuple[int, ...], net: NetworkSettings, warn: bool = True) -> bool:
    """True for a ``[C, H, W]`` image the chosen encoder can take; a smaller image warns (one line) and
    is flattened into the dense layers."""
    if len(shape) != 3:
        return False
    need = MIN_RESOLUTION[net.vis_encode_type]
    if min(shape[1:]) < need:
        if warn:
            import warnings

            warnings.warn(f"image sensor {list(shape)} is smaller than vis_encode_type '{net.vis_encode_type}' takes "
                          f"({need}x{need} pixels): flattened into the dense layers ({int(torch.Size(shape).numel())} "
                          "inputs; in a MAPPO centralised critic's state too, once per agent); pick a smaller encoder "
                          "(match3: 5, resnet: 15, simple: 20) to keep it an image",
                          stacklevel=3)
        return False
    return True


def make_encoder(obs_shape: tuple[int, ...] | None, net: NetworkSettings,
                 sensors: tuple[tuple[int, ...], ...] | None = None, warn: bool = True) -> nn.Module | None:
    """The observation encoder, or None when the dense layers take the flat observation as it is.

    * one ``[C, H, W]`` sensor: its :class:`VisualEncoder` (``hidden_units`` features);
    * several sensors with at least one image: an :class:`ObservationEncoder`;
    * otherwise (vectors only, or images below the encoder's minimum, which warn unless ``warn`` is
      False): None.

    Every returned module has ``out_size``.
    """
    if sensors is not None and len(sensors) > 1:
        if not any(_image_ok(tuple(s), net, warn=False) for s in sensors):
            for s in sensors:
                _image_ok(tuple(s), net, warn)  # the warning for small images
            return None
        return ObservationEncoder(tuple(tuple(s) for s in sensors), net)
    if obs_shape is None or not _image_ok(tuple(obs_shape), net, warn):
        return None
    return VisualEncoder(tuple(obs_shape), net.vis_encode_type, net.hidden_units)


StateParts = tuple[tuple[int, tuple[tuple[int, ...], ...]], ...]
"""Layout of a global state that is every agent's observation concatenated: per behavior, in state order,
``(n_agents, sensor shapes)`` (each agent's observation = its sensors flattened and concatenated)."""


class StateEncoder(nn.Module):
    """MAPPO's critic encoder for a global state made of every agent's observation (no ``env.state()``:
    Unity players, PettingZoo envs without one) when some sensor is an image.

    In the spirit of ML-Agents' POCA critic and of the MAPPO paper's agent-specific global state, each
    agent's observation goes through the per-sensor encoder of its behavior (:func:`make_encoder`:
    images through the ``vis_encode_type`` CNN, vectors as they are), one encoder shared by the agents
    of a behavior; the encodings are concatenated in state order. A behavior without an image the
    encoder takes passes through as it is.

    Args:
        parts: the state layout (:data:`StateParts`), e.g. ``((4, ((3, 12, 20), (16,))),)``.
        net: the critic's network settings (``vis_encode_type``, ``hidden_units``).

    Input: float32 ``[B, sum(n_agents * obs_size)]`` (behavior blocks ``[n_agents, obs_size]`` flattened,
    in ``parts`` order). Output: float32 ``[B, out_size]``, ``out_size = sum(n_agents * encoding size)``.

    Raises:
        ValueError: an empty layout or an unknown ``vis_encode_type``.
    """

    def __init__(self, parts: StateParts, net: NetworkSettings):
        super().__init__()
        if not parts:
            raise ValueError("StateEncoder: empty state layout")
        self.blocks: list[tuple[int, int]] = []  # (n_agents, obs_size) per behavior
        encs: list[nn.Module] = []
        self.out_size = 0
        for n, sensors in parts:
            sensors = tuple(tuple(int(x) for x in s) for s in sensors)
            size = sum(int(torch.Size(s).numel()) for s in sensors)
            enc = make_encoder(sensors[0], net, sensors if len(sensors) > 1 else None, warn=False)
            encs.append(enc if enc is not None else nn.Identity())
            self.blocks.append((int(n), size))
            self.out_size += int(n) * (enc.out_size if enc is not None else size)
        self.encoders = nn.ModuleList(encs)
        self.sizes = [n * size for n, size in self.blocks]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        out = []
        for (n, size), enc, part in zip(self.blocks, self.encoders, torch.split(x, self.sizes, dim=1)):
            out.append(part if isinstance(enc, nn.Identity) else enc(part.reshape(b * n, size)).reshape(b, -1))
        return torch.cat(out, -1)


def make_state_encoder(parts: StateParts | None, net: NetworkSettings) -> StateEncoder | None:
    """A :class:`StateEncoder` when the state is observations concatenated (``parts`` given) and some
    behavior has an image sensor that ``net.vis_encode_type`` takes; else None (the critic reads the flat
    state, as it always has: vector-only states and real ``env.state()`` keep their networks). Images
    below the encoder's minimum are flattened into the critic's dense layers too; the one warning line of the
    behavior's actor (:func:`_image_ok`) says so, so the run warns once per sensor."""
    if not parts:
        return None
    if not any(_image_ok(tuple(s), net, warn=False) for _, sensors in parts for s in sensors):
        return None
    return StateEncoder(parts, net)


def warn_image_state(state_shape: tuple[int, ...], who: str) -> None:
    """One warning line when a global state (``env.state()``) is an image: ``who`` (MAPPO's centralised
    critic, QMIX's mixer) takes it flattened into dense layers, naming its shape and size."""
    shape = tuple(int(x) for x in state_shape)
    hwc = len(shape) == 3 and shape[2] <= 4 < shape[0] and shape[1] > 4  # PettingZoo frames, e.g. [560, 880, 3]
    chw = len(shape) == 3 and shape[0] <= 4 and min(shape[1:]) >= 8  # not KAZ's [N, 26, 4] entity table
    if hwc or chw:
        import warnings

        warnings.warn(f"{who} takes the env's global state, an image {list(state_shape)}, flattened into dense layers "
                      f"({int(np.prod(state_shape))} inputs); use trainer_type ippo (a critic on each agent's own "
                      "observation, through the CNN) or a smaller state", stacklevel=3)


def scale_input(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` as float32 times ``scale`` (observations stored as uint8 -> [0, 1]); unchanged float32
    input when ``scale`` is 1."""
    if x.dtype != torch.float32:  # a fresh float32 copy: scale it in place (one image-sized temporary, not two)
        x = x.to(torch.float32)
        return x.mul_(scale) if scale != 1.0 else x
    return x * scale if scale != 1.0 else x


def mlp(in_size: int, net: NetworkSettings) -> nn.Sequential:
    """``[LayerNorm(in)] + num_layers x (Linear -> act -> [LayerNorm])``; output size ``hidden_units``."""
    act = nn.ReLU if net.activation == "relu" else nn.Tanh
    gain = nn.init.calculate_gain(net.activation)
    layers: list[nn.Module] = [nn.LayerNorm(in_size)] if net.layer_norm else []
    size = in_size
    for _ in range(net.num_layers):
        layers += [_init(nn.Linear(size, net.hidden_units), gain), act()]
        if net.layer_norm:
            layers.append(nn.LayerNorm(net.hidden_units))
        size = net.hidden_units
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """Policy ``pi(a | o, agent id)`` shared by the agents of one behavior.

    Args:
        obs_size: flattened observation size.
        n_agents: agents of the behavior (size of the one-hot id; 0 disables it).
        action: the behavior's :class:`ActionSpec` (discrete branches and/or continuous).
        net: network settings (``normalize`` adds a :class:`RunningMeanStd` on observations).
        obs_shape: the observation's shape; a ``[C, H, W]`` image gets a :class:`VisualEncoder`
            (``net.vis_encode_type``) before the MLP.
        obs_scale: factor applied to ``obs`` first (:attr:`envs.spec.BehaviorSpec.obs_scale`: 1/255 for
            observations stored as uint8, so the layers see [0, 1]; part of exported graphs).

    Inputs: ``obs`` float32 or uint8 ``[B, obs_size]`` (images flattened in CHW order), ``agent_id`` float32
    ``[B, n_agents]`` one-hot, ``mask`` float32 ``[B, sum(branches)]`` (1 = allowed) or ``None``.
    """

    def __init__(self, obs_size: int, n_agents: int, action: ActionSpec, net: NetworkSettings,
                 obs_shape: tuple[int, ...] | None = None, sensors: tuple[tuple[int, ...], ...] | None = None,
                 obs_scale: float = 1.0):
        super().__init__()
        self.obs_size, self.n_agents, self.action = obs_size, n_agents, action
        self.obs_scale = float(obs_scale)
        self.obs_norm = RunningMeanStd((obs_size,)) if net.normalize else None
        self.encoder = make_encoder(obs_shape, net, sensors)
        self.body = mlp((self.encoder.out_size if self.encoder is not None else obs_size) + n_agents, net)
        self.memory_size = net.memory.memory_size if net.memory is not None else 0
        self.lstm = make_lstm(net)
        head_in = self.memory_size // 2 if self.lstm is not None else net.hidden_units
        self.branches = list(action.discrete_branches)
        self.logits = _init(nn.Linear(head_in, sum(self.branches)), 0.01) if self.branches else None
        self.mu = _init(nn.Linear(head_in, action.continuous_size), 0.01) if action.continuous_size else None
        self.log_std = nn.Parameter(torch.zeros(action.continuous_size)) if action.continuous_size else None

    def update_obs_norm(self, obs: torch.Tensor) -> None:
        """Fold stored observations ``[N, obs_size]`` (float32 or uint8) into the observation normaliser, in
        the units it sees them in :meth:`features` (after ``obs_scale``); no-op without ``normalize``."""
        if self.obs_norm is not None:
            self.obs_norm.update(scale_input(obs, self.obs_scale))

    def features(self, obs: torch.Tensor, agent_id: torch.Tensor) -> torch.Tensor:
        """Encoder and dense layers: ``[B, obs_size]`` -> ``[B, hidden_units]`` (before any LSTM)."""
        obs = scale_input(obs, self.obs_scale)
        if self.obs_norm is not None:
            obs = self.obs_norm(obs)
        if self.encoder is not None:
            obs = self.encoder(obs)
        return self.body(torch.cat([obs, agent_id], -1) if self.n_agents else obs)

    def heads(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(masked logits [B, sum(branches)] | None, Gaussian mean [B, n_cont] | None)`` from the last features."""
        logits = self.logits(h) if self.logits is not None else None
        if logits is not None and mask is not None:
            logits = logits.masked_fill(mask < 0.5, -1e8)
        mean = self.mu(h) if self.mu is not None else None
        return logits, mean

    def forward(self, obs: torch.Tensor, agent_id: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Returns ``(masked logits [B, sum(branches)] | None, Gaussian mean [B, n_cont] | None)``
        (a recurrent actor starts from a zero memory here)."""
        h = self.features(obs, agent_id)
        if self.lstm is not None:
            h, _ = lstm_step(self.lstm, h, torch.zeros(h.shape[0], self.memory_size, device=h.device))
        return self.heads(h, mask)

    def _branch_logps(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """Log-probabilities per discrete branch (masked logits are -1e8, so their probability is 0)."""
        return [torch.log_softmax(l, -1) for l in torch.split(logits, self.branches, -1)]

    def _sample(self, logits, mean, deterministic: bool):
        n = (logits if logits is not None else mean).shape[0]
        logp = torch.zeros(n, device=(logits if logits is not None else mean).device)
        d = c = None
        if logits is not None:
            picks = []
            for lp in self._branch_logps(logits):
                a = lp.argmax(-1) if deterministic else torch.multinomial(lp.exp(), 1).squeeze(-1)
                logp = logp + lp.gather(-1, a.unsqueeze(-1)).squeeze(-1)
                picks.append(a)
            d = torch.stack(picks, -1)
        if mean is not None:
            std = self.log_std.exp()
            c = mean if deterministic else mean + std * torch.randn_like(mean)
            logp = logp + Normal(mean, std.expand_as(mean), validate_args=False).log_prob(c).sum(-1)
        return d, c, logp

    def act(self, obs, agent_id, mask=None, deterministic: bool = False):
        """Sample (or take the mode of) the policy (a recurrent actor: from a zero memory).

        Returns:
            ``(discrete int64 [B, n_branches] | None, continuous float32 [B, n_cont] | None,
            log_prob float32 [B])``. Continuous actions are raw Gaussian samples; the env layer
            applies ML-Agents' ``clamp(a, -3, 3) / 3``. (Categorical sampling is done directly on
            the log-probabilities: ``torch.distributions`` objects cost more than the network here.)
        """
        logits, mean = self(obs, agent_id, mask)
        return self._sample(logits, mean, deterministic)

    def act_recurrent(self, obs, agent_id, mask, memory: torch.Tensor, deterministic: bool = False):
        """One step of a recurrent actor: as :meth:`act`, from ``memory`` float32 ``[B, memory_size]``
        (``concat(h, c)``; zeros at an episode start). Returns ``(d, c, log_prob, new memory [B, memory_size])``."""
        h, memory = lstm_step(self.lstm, self.features(obs, agent_id), memory)
        logits, mean = self.heads(h, mask)
        d, c, logp = self._sample(logits, mean, deterministic)
        return d, c, logp, memory

    def _logp_entropy(self, logits, mean, d, c) -> tuple[torch.Tensor, torch.Tensor]:
        n = (logits if logits is not None else mean).shape[0]
        logp = torch.zeros(n, device=(logits if logits is not None else mean).device)
        ent = torch.zeros_like(logp)
        if logits is not None:
            for k, lp in enumerate(self._branch_logps(logits)):
                logp = logp + lp.gather(-1, d[:, k:k + 1]).squeeze(-1)
                ent = ent - (lp.exp() * lp).sum(-1)  # masked actions: p = 0, so they add nothing
        if mean is not None:
            normal = Normal(mean, self.log_std.exp().expand_as(mean), validate_args=False)
            logp = logp + normal.log_prob(c).sum(-1)
            ent = ent + normal.entropy().sum(-1)
        return logp, ent

    def evaluate(self, obs, agent_id, mask, d, c) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log_prob [B], entropy [B])`` of given actions (``d`` int64 ``[B, n_branches]``, ``c`` ``[B, n_cont]``)."""
        logits, mean = self(obs, agent_id, mask)
        return self._logp_entropy(logits, mean, d, c)

    def evaluate_sequences(self, obs, agent_id, mask, d, c, memory0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log_prob, entropy)`` float32 ``[N, L]`` of recorded sequences (recurrent actors).

        Args:
            obs: float32 ``[N, L, obs_size]``; agent_id ``[N, L, n_ids]``; mask ``[N, L, sum(branches)]`` or None;
                d int64 ``[N, L, n_branches]`` or None; c float32 ``[N, L, n_cont]`` or None.
            memory0: float32 ``[N, memory_size]``: the stored memory at each sequence's first step.

        Padded steps (after a sequence's end) produce values the caller masks out.
        """
        N, L = obs.shape[:2]
        h = self.features(obs.reshape(N * L, -1), agent_id.reshape(N * L, -1)).reshape(N, L, -1)
        out = lstm_sequence(self.lstm, h, memory0).reshape(N * L, -1)
        logits, mean = self.heads(out, None if mask is None else mask.reshape(N * L, -1))
        logp, ent = self._logp_entropy(logits, mean, None if d is None else d.reshape(N * L, -1),
                                       None if c is None else c.reshape(N * L, -1))
        return logp.reshape(N, L), ent.reshape(N, L)


def make_lstm(net: NetworkSettings) -> nn.LSTM | None:
    """ML-Agents' memory: ``nn.LSTM(hidden_units -> memory_size / 2)`` (``torch_entities/layers.py`` ``LSTM``),
    or None without ``network_settings.memory``."""
    if net.memory is None:
        return None
    return nn.LSTM(net.hidden_units, net.memory.memory_size // 2, batch_first=True)


def lstm_step(lstm: nn.LSTM, x: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step: ``x [B, H]``, ``memory [B, M] = concat(h, c)`` -> ``(out [B, M/2], new memory [B, M])``
    (ML-Agents packs the memory as h then c)."""
    half = lstm.hidden_size  # a Python int: static slices export at opset 9
    out, (h, c) = lstm(x.unsqueeze(1), (memory[:, :half].unsqueeze(0).contiguous(),
                                        memory[:, half:].unsqueeze(0).contiguous()))
    return out[:, 0], torch.cat([h[0], c[0]], -1)


def lstm_sequence(lstm: nn.LSTM, x: torch.Tensor, memory0: torch.Tensor) -> torch.Tensor:
    """An LSTM over sequences ``x [N, L, H]`` from ``memory0 [N, M]``; returns ``[N, L, M/2]``."""
    half = lstm.hidden_size
    out, _ = lstm(x, (memory0[:, :half].unsqueeze(0).contiguous(), memory0[:, half:].unsqueeze(0).contiguous()))
    return out


class Critic(nn.Module):
    """Value function ``V(x, agent id)`` (predicts *normalised* values when ValueNorm is on).

    MAPPO: ``x`` is the global state (centralised critic, with the agent id: the paper's
    agent-specific global state, Yu et al. 2022 §4). IPPO: ``x`` is the agent's own observation.

    Inputs ``x`` float32 ``[B, in_size]``, ``agent_id`` float32 ``[B, n_agents]``; output ``[B]``.
    ``in_shape`` / ``sensors``: the shape of ``x`` and its sensors; an image (IPPO's critic on image
    observations) gets its own encoder (:func:`make_encoder`). ``state_parts``: MAPPO's state when it is
    every agent's observation concatenated (:data:`StateParts`); with an image sensor in it, each agent's
    part goes through a :class:`StateEncoder` first. The first dense layer then takes the encodings
    (``encoder.out_size``) plus the id instead of ``in_size`` raw inputs.

    ``in_scale``: factor applied to ``x`` first (1/255 when IPPO's critic reads observations stored as uint8).

    ``encoded=True`` (every method): ``x`` is already :meth:`encode` d, float32 ``[B, encoding size]``
    (MAPPO encodes one state once for all the agents that share it).
    """

    def __init__(self, in_size: int, n_agents: int, net: NetworkSettings, in_shape: tuple[int, ...] | None = None,
                 sensors: tuple[tuple[int, ...], ...] | None = None, state_parts: StateParts | None = None,
                 in_scale: float = 1.0):
        super().__init__()
        self.n_agents, self.in_scale = n_agents, float(in_scale)
        if state_parts:
            self.encoder = make_state_encoder(state_parts, net)
            if self.encoder is not None and sum(n * s for n, s in self.encoder.blocks) != in_size:
                raise ValueError(f"Critic: state layout {state_parts} does not add up to the state size {in_size}")
        else:
            self.encoder = make_encoder(in_shape, net, sensors, warn=False)  # the actor's encoder warns
        self.body = mlp((self.encoder.out_size if self.encoder is not None else in_size) + n_agents, net)
        self.memory_size = net.memory.memory_size if net.memory is not None else 0
        self.lstm = make_lstm(net)
        self.v = _init(nn.Linear(self.memory_size // 2 if self.lstm is not None else net.hidden_units, 1), 1.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_size]`` -> ``[B, encoding size]`` (the identity without an encoder); ``x`` is scaled
        by ``in_scale`` first (IPPO's critic on observations stored as uint8)."""
        x = scale_input(x, self.in_scale)
        return self.encoder(x) if self.encoder is not None else x

    def features(self, x: torch.Tensor, agent_id: torch.Tensor, encoded: bool = False) -> torch.Tensor:
        if not encoded:
            x = self.encode(x)
        return self.body(torch.cat([x, agent_id], -1) if self.n_agents else x)

    def forward(self, x: torch.Tensor, agent_id: torch.Tensor, encoded: bool = False) -> torch.Tensor:
        return self.v(self.features(x, agent_id, encoded)).squeeze(-1)

    def step(self, x: torch.Tensor, agent_id: torch.Tensor, memory: torch.Tensor,
             encoded: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of a recurrent critic: ``(V [B], new memory [B, memory_size])``."""
        h, memory = lstm_step(self.lstm, self.features(x, agent_id, encoded), memory)
        return self.v(h).squeeze(-1), memory

    def sequences(self, x: torch.Tensor, agent_id: torch.Tensor, memory0: torch.Tensor,
                  encoded: bool = False) -> torch.Tensor:
        """V float32 ``[N, L]`` of recorded sequences ``x [N, L, in]`` from their first step's memory ``[N, M]``."""
        N, L = x.shape[:2]
        h = self.features(x.reshape(N * L, -1), agent_id.reshape(N * L, -1), encoded).reshape(N, L, -1)
        return self.v(lstm_sequence(self.lstm, h, memory0)).squeeze(-1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
