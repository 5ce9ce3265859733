"""ONNX export: the graph matches the ML-Agents 3.x contract (read from the file, not from the exporter's
constants) and onnxruntime acts exactly like the torch policy, for every trainer type."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto
from torch import nn

from envs.spec import ActionSpec, BehaviorSpec
from marl.checkpoint import FORMAT, CheckpointManager, TrainingStatus, spec_to_dict
from marl.algos import registry
from marl.export import ExportError, ExportPlan, export_bytes, export_checkpoint
from marl.export.onnx_export import random_masks
from marl.inference import Policy, TorchActorPolicy, load_policy
from test_export_helpers import continuous, hybrid, make_actor_payload, one_torch_thread  # noqa: F401 (autouse)

F32, I64 = TensorProto.FLOAT, TensorProto.INT64


def _dims(value_info) -> list:
    return [d.dim_param if d.dim_param else d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _signature(model: onnx.ModelProto):
    ins = {i.name: (i.type.tensor_type.elem_type, _dims(i)) for i in model.graph.input}
    outs = [(o.name, o.type.tensor_type.elem_type, _dims(o)) for o in model.graph.output]
    return ins, outs


def _session(data: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _run(sess, feeds) -> dict:
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


# ---------------------------------------------------------------- the contract, read from the graph

CASES = {
    "discrete": ActionSpec((5,)),
    "multi_discrete": ActionSpec((3, 4, 2)),
    "continuous": continuous(2),
    "hybrid": hybrid((3, 2), 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_graph_matches_mlagents_contract(case):
    action = CASES[case]
    payload, _ = make_actor_payload(action)
    model = onnx.load_from_string(export_bytes(payload).data)
    onnx.checker.check_model(model)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 9)]
    ins, outs = _signature(model)
    expected_ins = {"obs_0": (F32, ["batch", 18])}
    if action.discrete_branches:
        expected_ins["action_masks"] = (F32, ["batch", sum(action.discrete_branches)])
    assert ins == expected_ins  # no recurrent_in for a stateless policy, no initializers as inputs
    nb, nc = len(action.discrete_branches), action.continuous_size
    expected_outs = [("version_number", F32, [1]), ("memory_size", F32, [1])]
    if nc:
        expected_outs += [("continuous_actions", F32, ["batch", nc]), ("continuous_action_output_shape", F32, [1]),
                          ("deterministic_continuous_actions", F32, ["batch", nc])]
    if nb:
        expected_outs += [("discrete_actions", I64, ["batch", nb]), ("discrete_action_output_shape", F32, [1, nb]),
                          ("deterministic_discrete_actions", I64, ["batch", nb])]
    assert outs == expected_outs

    # constants, and the dynamic batch axis, in onnxruntime
    sess = _session(model.SerializeToString())
    for batch in (1, 7):
        feeds = {"obs_0": np.zeros((batch, 18), np.float32)}
        if nb:
            feeds["action_masks"] = np.ones((batch, sum(action.discrete_branches)), np.float32)
        out = _run(sess, feeds)
        np.testing.assert_array_equal(out["version_number"], np.array([3.0], np.float32))
        np.testing.assert_array_equal(out["memory_size"], np.array([0.0], np.float32))
        if nc:
            np.testing.assert_array_equal(out["continuous_action_output_shape"], np.array([nc], np.float32))
            assert out["continuous_actions"].shape == out["deterministic_continuous_actions"].shape == (batch, nc)
        if nb:
            assert out["discrete_action_output_shape"].dtype == np.float32
            np.testing.assert_array_equal(out["discrete_action_output_shape"],
                                          np.array([list(action.discrete_branches)], np.float32))
            assert out["discrete_actions"].dtype == out["deterministic_discrete_actions"].dtype == np.int64
            assert out["deterministic_discrete_actions"].shape == (batch, nb)


# ---------------------------------------------------------------- onnxruntime == torch, per trainer type

def _feeds(rng, batch, obs_size, branches):
    obs = (rng.standard_normal((batch, obs_size)) * 3.0).astype(np.float32)
    mask = random_masks(rng, batch, branches) if branches else None
    feeds = {"obs_0": obs}
    if mask is not None:
        feeds["action_masks"] = mask
    return obs, mask, feeds


@pytest.mark.parametrize("trainer_type", ["mappo", "ippo"])
@pytest.mark.parametrize("case", list(CASES))
def test_onnx_greedy_actions_equal_torch_actor(trainer_type, case):
    action = CASES[case]
    payload, actor = make_actor_payload(action, trainer_type=trainer_type, normalize=(case != "discrete"), seed=1)
    slot = 2
    sess = _session(export_bytes(payload, agent_slot=slot).data)
    rng = np.random.default_rng(5)
    branches = action.discrete_branches
    obs, mask, feeds = _feeds(rng, 256, 18, branches)
    out = _run(sess, feeds)
    ids = torch.nn.functional.one_hot(torch.full((256,), slot), 3).float()
    with torch.no_grad():
        d, c, _ = actor.act(torch.from_numpy(obs), ids, None if mask is None else torch.from_numpy(mask), deterministic=True)
    if branches:
        np.testing.assert_array_equal(out["deterministic_discrete_actions"], d.numpy())
        assert len(np.unique(d.numpy()[:, 0])) > 1  # the test is not vacuous
        offsets = np.concatenate([[0], np.cumsum(branches)[:-1]])
        for name in ("deterministic_discrete_actions", "discrete_actions"):
            picked = mask[np.arange(256)[:, None], offsets[None, :] + out[name]]
            assert np.all(picked == 1.0), f"{name} chose a masked action"
    if action.continuous_size:
        expected = (torch.clamp(c, -3, 3) / 3).numpy()
        np.testing.assert_allclose(out["deterministic_continuous_actions"], expected, rtol=0, atol=1e-5)
        assert np.abs(expected).max() > 0.05  # the test is not vacuous
        s = out["continuous_actions"]
        assert np.all(np.abs(s) <= 1.0) and not np.allclose(s, out["deterministic_continuous_actions"])


@pytest.mark.parametrize("encoder,shape", [("match3", (3, 6, 7)), ("simple", (3, 24, 20)), ("nature_cnn", (2, 36, 40)),
                                           ("resnet", (3, 16, 15)), ("fully_connected", (3, 6, 7))])
def test_image_encoders_export_and_act_like_torch(encoder, shape):
    """ML-Agents' visual encoders (vis_encode_type) run inside the graph on a [B, C, H, W] obs_0."""
    payload, actor = make_actor_payload(ActionSpec((7,)), trainer_type="ippo", n_agents=2, obs_shape=shape,
                                        seed=4, vis_encode_type=encoder)
    convs = [m for m in actor.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert (len(convs) == 0) == (encoder == "fully_connected")
    sess = _session(export_bytes(payload, agent_slot=1).data)
    assert list(sess.get_inputs()[0].shape[1:]) == list(shape)
    rng = np.random.default_rng(2)
    obs = rng.uniform(0, 1, (64, *shape)).astype(np.float32)
    mask = random_masks(rng, 64, (7,))
    out = _run(sess, {"obs_0": obs, "action_masks": mask})
    ids = torch.nn.functional.one_hot(torch.full((64,), 1), 2).float()
    with torch.no_grad():
        d, _, _ = actor.act(torch.from_numpy(obs.reshape(64, -1)), ids, torch.from_numpy(mask), deterministic=True)
    np.testing.assert_array_equal(out["deterministic_discrete_actions"], d.numpy())
    assert len(np.unique(d.numpy())) > 1


def test_small_images_fall_back_to_the_mlp():
    _, actor = make_actor_payload(ActionSpec((7,)), obs_shape=(3, 6, 7), vis_encode_type="simple")
    assert actor.encoder is None  # 6x7 is below simple's 20x20 minimum: flattened, as before


def test_agent_slot_is_baked_in():
    payload, actor = make_actor_payload(ActionSpec((5,)), seed=2)
    rng = np.random.default_rng(0)
    obs, mask, feeds = _feeds(rng, 256, 18, (5,))
    acts = {slot: _run(_session(export_bytes(payload, agent_slot=slot).data), feeds)["deterministic_discrete_actions"]
            for slot in (0, 1)}
    assert np.any(acts[0] != acts[1])
    with pytest.raises(ExportError, match="agent slot 3 is out of range"):
        export_bytes(payload, agent_slot=3)


def test_observation_normaliser_is_in_the_graph():
    payload, actor = make_actor_payload(continuous(3), normalize=True, seed=3)
    rng = np.random.default_rng(1)
    obs, _, feeds = _feeds(rng, 128, 18, ())
    out = _run(_session(export_bytes(payload).data), feeds)["deterministic_continuous_actions"]
    # the same weights without normalisation act differently: the normaliser matters and is exported
    raw = dict(payload, network_settings={**payload["network_settings"], "normalize": False},
               trainer={"actor": {k: v for k, v in payload["trainer"]["actor"].items() if not k.startswith("obs_norm.")}})
    out_raw = _run(_session(export_bytes(raw).data), feeds)["deterministic_continuous_actions"]
    assert np.abs(out - out_raw).max() > 1e-2


def test_sampled_discrete_actions_never_masked_and_follow_the_policy():
    payload, _ = make_actor_payload(ActionSpec((4, 3)), seed=4)
    sess = _session(export_bytes(payload).data)
    n = 4000
    mask = np.ones((n, 7), np.float32)
    mask[:, [0, 2]] = 0.0  # branch 0: only actions 1 and 3 allowed
    mask[:, 4] = 0.0       # branch 1: action 0 masked
    out = _run(sess, {"obs_0": np.zeros((n, 18), np.float32), "action_masks": mask})
    d = out["discrete_actions"]
    assert set(np.unique(d[:, 0])) == {1, 3}
    assert set(np.unique(d[:, 1])) == {1, 2}


def test_multiple_sensors_become_obs_inputs_in_order():
    payload, actor = make_actor_payload(ActionSpec((5,)), obs_shape=(24,), seed=6,
                                        extra={"sensor_shapes": [[2, 3, 2], [12]]})
    model = onnx.load_from_string(export_bytes(payload).data)
    ins, _ = _signature(model)
    assert ins == {"obs_0": (F32, ["batch", 2, 3, 2]), "obs_1": (F32, ["batch", 12]), "action_masks": (F32, ["batch", 5])}
    rng = np.random.default_rng(2)
    obs = rng.standard_normal((64, 24)).astype(np.float32)
    out = _run(_session(model.SerializeToString()),
               {"obs_0": obs[:, :12].reshape(64, 2, 3, 2), "obs_1": obs[:, 12:], "action_masks": np.ones((64, 5), np.float32)})
    ids = torch.nn.functional.one_hot(torch.zeros(64, dtype=torch.int64), 3).float()
    with torch.no_grad():
        d, _, _ = actor.act(torch.from_numpy(obs), ids, None, deterministic=True)
    np.testing.assert_array_equal(out["deterministic_discrete_actions"], d.numpy())


# ---------------------------------------------------------------- recurrent plumbing (QMIX/VDN style)

class TinyGRUAgent(nn.Module):
    """pymarl's RNN agent in miniature: ``Q(o, id, h)`` with a GRU cell (the QMIX/VDN agent network)."""

    def __init__(self, obs_size, n_agents, n_actions, hidden=8):
        super().__init__()
        self.n_agents = n_agents
        self.fc = nn.Linear(obs_size + n_agents, hidden)
        self.gru = nn.GRUCell(hidden, hidden)
        self.q = nn.Linear(hidden, n_actions)

    def forward(self, obs, ids, h):
        h2 = self.gru(torch.relu(self.fc(torch.cat([obs, ids], 1))), h)
        return self.q(h2), h2


class GreedyGRUCore(nn.Module):
    def __init__(self, agent: TinyGRUAgent, slot: int):
        super().__init__()
        self.agent = agent
        self.register_buffer("agent_id", torch.nn.functional.one_hot(torch.tensor([slot]), agent.n_agents).float())

    def forward(self, obs, memory):
        q, h = self.agent(obs, obs[:, :1] * 0.0 + self.agent_id, memory)
        return q, None, None, h


class GreedyGRUPolicy(Policy):
    """The torch reference: greedy masked Q, hidden = GRU state [B, M]."""

    def __init__(self, agent: TinyGRUAgent, spec: BehaviorSpec):
        self.agent, self.spec = agent, spec

    @torch.no_grad()
    def act(self, obs, agent_index, mask=None, hidden=None, deterministic=True):
        o = torch.as_tensor(np.asarray(obs, np.float32)).reshape(len(agent_index), -1)
        ids = torch.nn.functional.one_hot(torch.as_tensor(agent_index), self.spec.n_agents).float()
        h = torch.zeros(len(agent_index), self.agent.gru.hidden_size) if hidden is None else hidden
        q, h = self.agent(o, ids, h)
        if mask is not None:
            q = q.masked_fill(torch.as_tensor(mask) < 0.5, -float("inf"))
        return q.argmax(-1, keepdim=True).numpy(), None, h


@pytest.fixture
def gru_trainer():
    torch.manual_seed(0)
    spec = BehaviorSpec("agent", ("a0", "a1"), (6,), ActionSpec((4,)))
    agent = TinyGRUAgent(6, 2, 4)
    with torch.no_grad():
        for p in agent.parameters():
            p.mul_(3.0)

    def export_gru(payload, slot):
        a = TinyGRUAgent(6, 2, 4)
        a.load_state_dict(payload["trainer"]["agent"])
        return ExportPlan(core=GreedyGRUCore(a, slot), spec=spec, reference=GreedyGRUPolicy(a, spec),
                          memory_size=8, stochastic=False)

    registry.register(registry.Algorithm("test_gru", hyperparameters=None, trainer=None, policy_loader=None,
                                         exporter=export_gru))
    payload = {"format": FORMAT, "behavior": "agent", "trainer_type": "test_gru", "step": 10, "env_id": "test",
               "behavior_spec": spec_to_dict(spec), "trainer": {"agent": agent.state_dict()}}
    yield payload, agent, spec
    registry.unregister("test_gru")


def test_recurrent_graph_contract_and_greedy_q_equivalence(gru_trainer):
    payload, agent, spec = gru_trainer
    model = onnx.load_from_string(export_bytes(payload, agent_slot=1).data)
    ins, outs = _signature(model)
    assert ins == {"obs_0": (F32, ["batch", 6]), "action_masks": (F32, ["batch", 4]), "recurrent_in": (F32, ["batch", 1, 8])}
    assert outs == [("version_number", F32, [1]), ("memory_size", F32, [1]),
                    ("discrete_actions", I64, ["batch", 1]), ("discrete_action_output_shape", F32, [1, 1]),
                    ("deterministic_discrete_actions", I64, ["batch", 1]), ("recurrent_out", F32, ["batch", 1, 8])]
    sess = _session(model.SerializeToString())
    rng = np.random.default_rng(3)
    batch = 64
    memory = np.zeros((batch, 1, 8), np.float32)
    hidden = None
    ref = GreedyGRUPolicy(agent, spec)
    seen = set()
    for _ in range(5):  # actions depend on the carried state: compare over a sequence
        obs, mask, feeds = _feeds(rng, batch, 6, (4,))
        feeds["recurrent_in"] = memory
        out = _run(sess, feeds)
        np.testing.assert_array_equal(out["memory_size"], np.array([8.0], np.float32))
        d_ref, _, hidden = ref.act(obs, np.ones(batch, np.int64), mask, hidden)
        np.testing.assert_array_equal(out["deterministic_discrete_actions"], d_ref)
        np.testing.assert_array_equal(out["discrete_actions"], d_ref)  # greedy agent: sampled == greedy
        np.testing.assert_allclose(out["recurrent_out"][:, 0], hidden.numpy(), atol=1e-5)
        assert np.all(mask[np.arange(batch), out["deterministic_discrete_actions"][:, 0]] == 1.0)
        seen |= set(np.unique(d_ref))
        memory = out["recurrent_out"]
    assert len(seen) > 1


def test_onnx_policy_plays_recurrent_brain(gru_trainer, tmp_path):
    payload, agent, spec = gru_trainer
    path = export_checkpoint(payload, tmp_path / "agent.onnx")
    pol = load_policy(path)
    assert pol.spec == spec and pol.memory_size == 8 and pol.agent_slot == 0
    rng = np.random.default_rng(4)
    obs = rng.standard_normal((3, 6)).astype(np.float32)
    ref = GreedyGRUPolicy(agent, spec)
    d1, c1, h1 = pol.act(obs, np.zeros(3, np.int64))
    r1, _, rh = ref.act(obs, np.zeros(3, np.int64))
    assert c1 is None and h1.shape == (3, 1, 8)
    np.testing.assert_array_equal(d1, r1)
    d2, _, h2 = pol.act(obs, np.zeros(3, np.int64), hidden=h1)
    np.testing.assert_array_equal(d2, ref.act(obs, np.zeros(3, np.int64), hidden=rh)[0])
    h0 = pol.reset_hidden(h2, np.array([True, False, True]))
    assert np.all(h0[[0, 2]] == 0) and np.array_equal(h0[1], h2[1])


# ---------------------------------------------------------------- verification, files, errors

def test_onnx_policy_matches_checkpoint_policy(tmp_path):
    payload, _ = make_actor_payload(hybrid((3, 2), 2), normalize=True, seed=7)
    path = export_checkpoint(payload, tmp_path / "agent.onnx")
    onnx_pol, torch_pol = load_policy(path), TorchActorPolicy(payload, tmp_path / "x.pt")
    assert onnx_pol.spec == torch_pol.spec
    rng = np.random.default_rng(8)
    obs = rng.standard_normal((50, 18)).astype(np.float32)
    mask = random_masks(rng, 50, (3, 2))
    d, c, h = onnx_pol.act(obs, np.zeros(50, np.int64), mask)
    d_ref, c_ref, _ = torch_pol.act(obs, np.zeros(50, np.int64), mask)
    np.testing.assert_array_equal(d, d_ref)
    np.testing.assert_allclose(c, c_ref, atol=1e-5)
    assert h is None
    ds, cs, _ = onnx_pol.act(obs, np.zeros(50, np.int64), mask, deterministic=False)
    assert ds.shape == (50, 2) and cs.shape == (50, 2) and np.all(np.abs(cs) <= 1)


def test_verification_rejects_a_graph_that_disagrees_with_torch(tmp_path, monkeypatch):
    payload, _ = make_actor_payload(ActionSpec((5,)), seed=9)
    import marl.export.ppo as ppo

    real = ppo.ActorCore.forward

    def broken(self, obs, memory=None):  # the exported graph no longer computes what the policy does
        logits, mean, log_std, m = real(self, obs, memory)
        return -logits, mean, log_std, m

    monkeypatch.setattr(ppo.ActorCore, "forward", broken)
    dest = tmp_path / "agent.onnx"
    with pytest.raises(ExportError, match="deterministic_discrete_actions differs from the torch policy"):
        export_checkpoint(payload, dest)
    assert not dest.exists() and not list(tmp_path.iterdir())


def test_unknown_trainer_type_and_malformed_payload():
    payload, _ = make_actor_payload(ActionSpec((5,)))
    with pytest.raises(ExportError, match="no ONNX exporter for trainer_type 'nope'"):
        export_bytes(dict(payload, trainer_type="nope"))
    with pytest.raises(ExportError, match="not a checkpoint payload"):
        export_bytes({"trainer": {}})
    bad = dict(payload, trainer={"actor": {k: v[:1] for k, v in payload["trainer"]["actor"].items()}})
    with pytest.raises(ExportError, match="actor state does not match"):
        export_bytes(bad)


def test_checkpoint_manager_writes_onnx_beside_checkpoints(tmp_path):
    """The hook marl-learn uses: <Behavior>-<step>.onnx beside each kept .pt and <run>/<Behavior>.onnx at the end."""
    payload, _ = make_actor_payload(continuous(2), seed=10)
    status = TrainingStatus(tmp_path)
    m = CheckpointManager(tmp_path, "agent", keep=2, status=status)
    m.save(payload, 500, None, exporter=export_checkpoint)
    m.finalize(dict(payload, step=1000), 1000, None, exporter=export_checkpoint)
    for p in (tmp_path / "agent" / "agent-500.onnx", tmp_path / "agent" / "agent-1000.onnx", tmp_path / "agent.onnx"):
        assert load_policy(p).metadata["marl.behavior"] == "agent"
    assert load_policy(tmp_path / "agent.onnx").metadata["marl.step"] == "1000"


def test_export_leaves_the_trainers_random_stream_alone():
    """Tracing samples (randn_like, multinomial); a checkpoint export must not shift training's RNG."""
    payload, _ = make_actor_payload(hybrid((3,), 2))
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    export_bytes(payload)
    assert torch.equal(torch.rand(3), expected)
