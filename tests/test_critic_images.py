"""MAPPO's centralised critic on a state made of every agent's observation (no ``env.state()``, as for a
Unity player) with image sensors: each agent's observation goes through the per-sensor encoder
(``marl.networks.StateEncoder``), never raw pixels into the first dense layer; vector-only states and
real ``env.state()`` keep exactly the networks they had."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from envs.games.soccer import SoccerTwosEnv
from envs.vector import VecEnv, default_factory
from marl.algos.factory import make_trainer
from marl.networks import Critic, ObservationEncoder, StateEncoder, VisualEncoder
from marl_helpers import cfg_of


class _SoccerWithoutState(SoccerTwosEnv):
    """SoccerTwos as a Unity player shows it: no ``state()``, so the state is the observations concatenated."""

    def state(self):
        raise NotImplementedError("a Unity player has no global state")


def soccer_unity_like(**kw):
    return _SoccerWithoutState(**kw)


def _trainer(env_path: str, env_kwargs: dict, net: dict, behavior: str = "SoccerTwos", areas: int = 2,
             hp: dict | None = None, device=torch.device("cpu")):
    data = {"behaviors": {behavior: {"trainer_type": "mappo",
                                     "hyperparameters": hp or {"buffer_size": 256, "batch_size": 128, "num_epoch": 2},
                                     "network_settings": net, "max_steps": 100000}},
            "env_settings": {"env_path": env_path, "env_kwargs": env_kwargs, "num_areas": areas, "seed": 1}}
    cfg = cfg_of(data)
    factory = default_factory(env_path, env_kwargs)
    probe = factory(0, None)
    spec = probe.spec
    probe.close()
    torch.manual_seed(0)
    return cfg, factory, spec, make_trainer(spec, cfg, areas, device)


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_camera_and_vector_critic_encodes_each_agent_and_its_first_dense_layer_takes_the_encodings():
    # test_sensors' game: 2 agents, camera [3, 24, 24] + vector [5], no state()
    cfg, _, spec, trainer = _trainer("test_sensors:factory", {}, {"hidden_units": 32, "vis_encode_type": "simple"},
                                     behavior="agent")
    assert spec.state_is_obs and spec.state_parts == ((2, ((3, 24, 24), (5,))),)
    critic = trainer.learners["agent"].critic
    assert isinstance(critic.encoder, StateEncoder)
    (enc,) = critic.encoder.encoders  # one encoder shared by the behavior's 2 agents
    assert isinstance(enc, ObservationEncoder) and isinstance(enc.encoders[0], VisualEncoder)
    n_cnn = sum(p.numel() for m in enc.encoders[0].conv for p in m.parameters())
    assert n_cnn > 3000  # conv 16 8x8 + conv 32 4x4 weights
    first = next(m for m in critic.body if isinstance(m, torch.nn.Linear))
    pixels = 2 * (3 * 24 * 24 + 5)
    assert spec.state_shape == (pixels,)
    assert first.in_features == 2 * (32 + 5) + 2  # 2 agents x (CNN features + vector), + one-hot id
    # the encoding is each agent's observation through the shared encoder, in slot order
    state = torch.rand(3, pixels)
    with torch.no_grad():
        z = critic.encode(state)
        per_agent = [enc(state[:, i * (pixels // 2):(i + 1) * (pixels // 2)]) for i in range(2)]
    torch.testing.assert_close(z, torch.cat(per_agent, -1))
    # and the MAPPO value of agent 1 moves when agent 0's camera changes (it sees every agent's image)
    ids = torch.eye(2)[[1, 1]]
    two = state[:2].clone()
    two[1, :3 * 24 * 24] = 1.0 - two[0, :3 * 24 * 24]
    two[1, 3 * 24 * 24:] = two[0, 3 * 24 * 24:]
    with torch.no_grad():
        v = critic(two, ids)
    assert not torch.isclose(v[0], v[1])


def test_vector_only_and_real_state_critics_keep_their_old_parameter_shapes():
    # shapes printed by the code before the state encoder (commit b2a394d), for these exact settings
    old_ff = {"body.0.weight": (68,), "body.0.bias": (68,), "body.1.weight": (16, 68), "body.1.bias": (16,),
              "body.3.weight": (16,), "body.3.bias": (16,), "body.4.weight": (16, 16), "body.4.bias": (16,),
              "body.6.weight": (16,), "body.6.bias": (16,), "v.weight": (1, 16), "v.bias": (1,)}
    _, _, spec, t = _trainer(__name__ + ":soccer_unity_like", {}, {"hidden_units": 16, "num_layers": 2})
    assert spec.state_is_obs and spec.state_shape == (64,)
    assert t.learners["SoccerTwos"].critic.encoder is None and _shapes(t.learners["SoccerTwos"].critic) == old_ff
    # rays + vector sensors (several sensors, no image), recurrent critic
    old_rec = {"body.0.weight": (836,), "body.0.bias": (836,), "body.1.weight": (16, 836), "body.1.bias": (16,),
               "body.3.weight": (16,), "body.3.bias": (16,), "lstm.weight_ih_l0": (16, 16), "lstm.weight_hh_l0": (16, 4),
               "lstm.bias_ih_l0": (16,), "lstm.bias_hh_l0": (16,), "v.weight": (1, 4), "v.bias": (1,)}
    _, _, _, t = _trainer(__name__ + ":soccer_unity_like", {"rays": True},
                          {"hidden_units": 16, "num_layers": 1, "memory": {"memory_size": 8, "sequence_length": 4}})
    assert _shapes(t.learners["SoccerTwos"].critic) == old_rec
    # images but a real env.state(): the critic reads that state, as before
    old_state = {**old_ff, "body.0.weight": (29,), "body.0.bias": (29,), "body.1.weight": (16, 29)}
    _, _, spec, t = _trainer("envs.games.soccer", {"visual": True},
                             {"hidden_units": 16, "num_layers": 2, "vis_encode_type": "match3"})
    assert not spec.state_is_obs and spec.state_parts is None
    assert _shapes(t.learners["SoccerTwos"].critic) == old_state


@pytest.fixture
def one_thread():
    """One intra-op thread, as marl-learn runs (several spin-wait on a busy 2-core machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_soccer_visual_mappo_trains_with_a_cnn_in_the_critic(one_thread):
    # 2048 env steps (4 copies); decisions every 4 steps keep the CNN work (4 images per critic sample) small
    hp = {"buffer_size": 512, "batch_size": 256, "num_epoch": 1, "learning_rate": 0.001}
    cfg, factory, spec, trainer = _trainer(__name__ + ":soccer_unity_like",
                                           {"visual": True, "max_steps": 60, "decision_period": 4},
                                           {"hidden_units": 16, "num_layers": 1, "vis_encode_type": "match3"},
                                           areas=4, hp=hp)
    L = trainer.learners["SoccerTwos"]
    assert isinstance(L.critic.encoder, StateEncoder)
    first = next(m for m in L.critic.body if isinstance(m, torch.nn.Linear))
    assert spec.state_shape == (4 * (3 * 12 * 20 + 16),)
    assert first.in_features == 4 * (16 + 16) + 4  # not 4 x 736 pixels and floats
    conv = L.critic.encoder.encoders[0].encoders[0].conv[0].weight
    before = conv.detach().clone()
    venv = VecEnv(factory, spec, 1, 4, seed=1)
    step, logs = 0, []
    try:
        while step < 2048:
            n, out = trainer.collect_and_train(venv, step)
            step += n
            logs.append(out["SoccerTwos"])
    finally:
        venv.close()
    assert step >= 2048 and all(math.isfinite(v) for log in logs for v in log.values())
    assert not torch.equal(before, conv.detach())  # the critic's CNN learned
    first_loss, last_loss = logs[0]["Losses/Value Loss"], logs[-1]["Losses/Value Loss"]
    assert first_loss > 0 and last_loss > 0


def test_the_critic_encodes_each_state_once_per_minibatch(one_thread):
    # both agents decide at every step: 2 experiences per state; the critic's minibatches keep them together
    hp = {"buffer_size": 256, "batch_size": 64, "num_epoch": 2}
    _, factory, spec, trainer = _trainer("test_sensors:factory", {"size": 20}, {"hidden_units": 16},
                                         behavior="agent", hp=hp)
    L = trainer.learners["agent"]
    cnn = L.critic.encoder.encoders[0].encoders[0]
    seen = []
    cnn.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    venv = VecEnv(factory, spec, 1, 2, seed=1)
    try:
        steps, batch, _ = trainer.collect(venv, 0)
    finally:
        venv.close()
    n = int(batch["agent"].buffer.tensors(torch.device("cpu"))["valid"].sum())
    assert n == 256 and seen and all(k == 2 * 2 for k in seen)  # bootstraps: 2 copies' states, once each
    seen.clear()
    logs = trainer.learn(0, steps, batch)
    assert math.isfinite(logs["agent"]["Losses/Value Loss"])
    # 128 states x 2 agents' images for the rollout's values, then 2 epochs x 4 minibatches of 32 states x 2
    # images (per experience, it would be 64 samples x 2 images per minibatch)
    assert sum(seen) == 128 * 2 + 2 * 4 * 32 * 2, seen


def test_recurrent_critic_on_images_steps_and_trains_on_sequences(one_thread):
    hp = {"buffer_size": 128, "batch_size": 64, "num_epoch": 1}
    _, factory, spec, trainer = _trainer("test_sensors:factory", {"size": 20}, {
        "hidden_units": 16, "vis_encode_type": "simple", "memory": {"memory_size": 8, "sequence_length": 4}},
        behavior="agent", hp=hp)
    L = trainer.learners["agent"]
    assert isinstance(L.critic.encoder, StateEncoder) and L.critic.lstm is not None
    venv = VecEnv(factory, spec, 1, 2, seed=1)
    try:
        _, logs = trainer.collect_and_train(venv, 0)
    finally:
        venv.close()
    assert math.isfinite(logs["agent"]["Losses/Value Loss"])
    # the values recorded while acting (critic.step on encoded states) are those of the sequence pass
    x = torch.rand(2, 3, spec.state_shape[0])
    ids = torch.eye(2)[[0, 1]].unsqueeze(1).expand(2, 3, 2)
    mem = torch.zeros(2, 8)
    with torch.no_grad():
        seq = L.critic.sequences(x, ids, mem)
        steps = []
        for k in range(3):
            v, mem = L.critic.step(L.critic.encode(x[:, k]), ids[:, k], mem, encoded=True)
            steps.append(v)
    torch.testing.assert_close(seq, torch.stack(steps, 1))


def test_a_critic_saved_before_the_state_encoder_still_loads_and_resumes():
    _, _, spec, trainer = _trainer("test_sensors:factory", {}, {"hidden_units": 32, "vis_encode_type": "simple"},
                                   behavior="agent")
    L = trainer.learners["agent"]
    old = Critic(spec.state_shape[0], L.n_ids, L.settings.network_settings)  # the flat critic of older runs
    old_opt = torch.optim.Adam(old.parameters(), lr=1e-3)
    old(torch.rand(4, spec.state_shape[0]), torch.eye(2)[[0, 1, 0, 1]]).sum().backward()
    old_opt.step()
    state = L.state_dict()
    state["critic"], state["critic_opt"] = old.state_dict(), old_opt.state_dict()
    L.load_state_dict(state)
    assert L.critic.encoder is None and _shapes(L.critic) == _shapes(old)
    x = torch.rand(3, spec.state_shape[0])
    ids = torch.eye(2)[[0, 1, 0]]
    with torch.no_grad():
        torch.testing.assert_close(L.critic(x, ids), old(x, ids))
    assert L.critic_opt.state_dict()["state"]  # the optimiser's moments came along
    # Ray runners get the learner's weights: the same fallback applies there
    fresh = make_trainer(spec, trainer.cfg, 2, torch.device("cpu"))
    fresh.load_weights(trainer.weights())
    assert fresh.learners["agent"].critic.encoder is None


# ------------------------------------------------------------------------------------ device
@pytest.mark.parametrize("memory", [False, True])
def test_image_critic_learns_and_acts_with_every_tensor_on_meta(memory):
    pytest.importorskip("torch.utils._python_dispatch")
    import test_device_meta as dm

    net = {"hidden_units": 16, "vis_encode_type": "simple"}
    if memory:
        net["memory"] = {"memory_size": 8, "sequence_length": 4}
    hp = {"buffer_size": 64, "batch_size": 32, "num_epoch": 1}
    cfg, factory, spec, cpu_trainer = _trainer("test_sensors:factory", {"size": 20}, net, behavior="agent", hp=hp)
    venv = VecEnv(factory, spec, 1, 2, seed=0)
    mp = pytest.MonkeyPatch()
    try:
        import torch.nn.utils.clip_grad as clip_grad
        import torch.optim.adam as adam

        mp.setattr(clip_grad, "_device_has_foreach_support", lambda device: True)
        mp.setattr(adam, "_device_dtype_check_for_fused", lambda p, *a, **k: None)
        steps, batch, _ = cpu_trainer.collect(venv, 0)
        guard = dm.ShadowMeta()
        with guard:
            trainer = make_trainer(spec, cfg, 2, dm.META)
            assert isinstance(trainer.learners["agent"].critic.encoder, StateEncoder)
            logs = trainer.learn(0, steps, copy.deepcopy(batch))
            trainer.collect(venv, steps)  # acting: truncation bootstraps (and recurrent critic steps) on meta
    finally:
        mp.undo()
        venv.close()
    assert guard.mismatches == {}, "tensors off the learner's device:\n" + "\n".join(
        f"  {site}  ({what})" for site, what in guard.mismatches.items())
    assert all(math.isfinite(v) for v in logs["agent"].values())
