"""Agent slots that grow (marl.grow): a Unity scene where more agents of one behavior and team appear than
the trainer saw at start (the stand-in's --extra-agent-step) never crashes; the run grows the slots at the
next rollout boundary, widens the networks so that they compute what they computed before, trains the new
agents, records the grown slots in the checkpoint, and --resume starts with them."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch

import marl.run
from envs.spec import ActionSpec, BehaviorSpec, EnvSpec
from marl import grow
from marl.algos.factory import make_trainer
from marl.checkpoint import load_checkpoint, saved_agent_slots
from marl.run import prepare_run_dir, train
from marl_helpers import cfg_of
from unity_helpers import STANDIN, free_port, time_limit

_time_limit = time_limit(150)

OBS = 8


def _spec(n0: int, n1: int, branches: tuple[int, ...] = (3, 3, 3)) -> EnvSpec:
    """A Unity-like SoccerTwos spec: team-major slots, state = every slot's observation."""
    teams = (0,) * n0 + (1,) * n1
    b = BehaviorSpec("SoccerTwos", tuple(f"SoccerTwos?team={t}?slot={i}" for i, t in enumerate(teams)), (OBS,),
                     ActionSpec(branches), teams)
    return EnvSpec("/opt/player", (b,), ((n0 + n1) * OBS,), state_is_obs=True)


def _cfg(trainer_type: str, net: dict):
    return cfg_of({"behaviors": {"SoccerTwos": {"trainer_type": trainer_type,
                                                "hyperparameters": {"buffer_size": 64, "batch_size": 32},
                                                "network_settings": {"hidden_units": 16, "num_layers": 2, **net},
                                                "max_steps": 1000}},
                   "env_settings": {"env_path": "/opt/player", "seed": 1}})


def test_slot_map_keeps_each_team_rank_and_refuses_shrinking():
    old, new = _spec(2, 2).behaviors[0], _spec(3, 4).behaviors[0]
    assert grow.slot_map(old, new).tolist() == [0, 1, 3, 4]  # team 1 moves past team 0's new slot
    with pytest.raises(grow.GrowError, match="team 1 has 1 slots"):
        grow.slot_map(old, _spec(3, 1).behaviors[0])
    needed: dict = {}
    grow.note_needed(needed, type("S", (), {"info": {"needed_slots": {"SoccerTwos": {0: 3}}}})())
    grow.note_needed(needed, type("S", (), {"info": {"needed_slots": {"SoccerTwos": {0: 2, 1: 5}}}})())
    assert needed == {"SoccerTwos": {0: 3, 1: 5}}
    assert grow.shortfall(_spec(3, 3), needed) == {"SoccerTwos": 5}
    assert grow.shortfall(_spec(3, 5), needed) == {}


@pytest.mark.parametrize("trainer_type", ["mappo", "ippo", "poca"])
def test_widening_keeps_actions_and_values_of_the_old_slots(trainer_type):
    # agent ids on and no input LayerNorm: every slot-dependent tensor widens, and exactly
    cfg = _cfg(trainer_type, {"agent_id": True, "layer_norm": False})
    old_spec, new_spec = _spec(2, 2), _spec(3, 3)
    torch.manual_seed(0)
    old = make_trainer(old_spec, cfg, 1, torch.device("cpu"))
    torch.manual_seed(1)
    new = make_trainer(new_spec, cfg, 1, torch.device("cpu"))
    Lo, Ln = old.learners["SoccerTwos"], new.learners["SoccerTwos"]
    for p in Lo.actor.parameters():  # make the old weights unlike a fresh init, so a lost column shows
        p.data.add_(0.3 * torch.randn_like(p))
    smap = grow.slot_map(old_spec.behaviors[0], new_spec.behaviors[0])
    obs = torch.randn(4, OBS)
    ids_old, ids_new = torch.eye(4)[:, :Lo.n_ids], torch.eye(6)[smap][:, :Ln.n_ids]
    assert Lo.n_ids == 4 and Ln.n_ids == 6
    before_logits, _ = Ln.actor(obs, ids_new)
    assert (before_logits - Lo.actor(obs, ids_old)[0]).abs().max() > 1e-3  # not yet the same network
    grow.transfer(old, new, old_spec, new_spec)
    with torch.no_grad():
        lo, _ = Lo.actor(obs, ids_old)
        ln, _ = Ln.actor(obs, ids_new)
        assert torch.equal(lo.argmax(-1), ln.argmax(-1)) and torch.allclose(lo, ln, atol=1e-6)
        if trainer_type == "poca":  # one team's group: 2 present members of 2 slots, then of 3
            vo = Lo.critic.value(obs[:2].view(1, 2, OBS), torch.ones(1, 2, dtype=torch.bool))
            padded = torch.zeros(1, 3, OBS)
            padded[0, :2] = obs[:2]
            vn = Ln.critic.value(padded, torch.tensor([[True, True, False]]))
        else:
            state_old = obs.reshape(1, -1).repeat(4, 1)
            state_new = torch.zeros(6, OBS)
            state_new[smap] = obs
            state_new = state_new.reshape(1, -1).repeat(4, 1)
            vo = Lo.critic(state_old if Lo.centralised else obs, ids_old)
            vn = Ln.critic(state_new if Ln.centralised else obs, ids_new)
        assert torch.allclose(vo, vn, atol=1e-5), (vo, vn)
    if trainer_type != "poca":  # optimiser moments moved with their columns; new columns start at zero
        st = new.state_dict("SoccerTwos")["actor_opt"]["state"]
        assert all(s["exp_avg"].shape == p.shape for s, p in zip(st.values(), Ln.actor.parameters()))


def test_an_image_state_encoder_critic_widens_per_slot_encoding():
    # a state of observations with a camera: MAPPO's critic encodes each slot (StateEncoder); the first dense
    # layer's columns of each slot's encoding move with the slot and the new slot's are zero
    sensors, size = ((3, 12, 20), (16,)), 3 * 12 * 20 + 16

    def spec(n0, n1):
        teams = (0,) * n0 + (1,) * n1
        b = BehaviorSpec("SoccerTwos", tuple(f"SoccerTwos?team={t}?slot={i}" for i, t in enumerate(teams)), (size,),
                         ActionSpec((3, 3, 3)), teams, sensors)
        return EnvSpec("/opt/player", (b,), ((n0 + n1) * size,), state_is_obs=True)

    cfg = _cfg("mappo", {"agent_id": True, "layer_norm": False, "vis_encode_type": "match3"})
    old_spec, new_spec = spec(2, 2), spec(3, 3)
    old, new = (make_trainer(s, cfg, 1, torch.device("cpu")) for s in (old_spec, new_spec))
    Lo, Ln = old.learners["SoccerTwos"], new.learners["SoccerTwos"]
    assert type(Ln.critic.encoder).__name__ == "StateEncoder"
    grow.transfer(old, new, old_spec, new_spec)
    smap = grow.slot_map(old_spec.behaviors[0], new_spec.behaviors[0])
    obs = torch.rand(4, size)
    padded = torch.rand(6, size)  # whatever the new slots observe: their columns have zero weights
    padded[smap] = obs
    with torch.no_grad():
        vo = Lo.critic(obs.reshape(1, -1).repeat(4, 1), torch.eye(4))
        vn = Ln.critic(padded.reshape(1, -1).repeat(4, 1), torch.eye(6)[smap])
    assert torch.allclose(vo, vn, atol=1e-5), (vo, vn)


def test_a_layer_norm_critic_moves_but_an_id_free_actor_is_unchanged():
    # the Unity default (no agent id, layer_norm true): the actor does not depend on the slots at all
    cfg = _cfg("mappo", {})
    old_spec, new_spec = _spec(2, 2), _spec(3, 3)
    old = make_trainer(old_spec, cfg, 1, torch.device("cpu"))
    new = make_trainer(new_spec, cfg, 1, torch.device("cpu"))
    grow.transfer(old, new, old_spec, new_spec)
    sd_old, sd_new = old.actor("SoccerTwos").state_dict(), new.actor("SoccerTwos").state_dict()
    assert all(torch.equal(sd_old[k], sd_new[k]) for k in sd_old)
    assert grow.refusal(new, cfg) is None
    ids_selfplay = cfg_of({"behaviors": {"SoccerTwos": {"trainer_type": "mappo", "network_settings": {"agent_id": True},
                                                      "self_play": {"save_steps": 100}}},
                           "env_settings": {"env_path": "/opt/player"}})
    why = grow.refusal(make_trainer(_spec(2, 2), ids_selfplay, 1, torch.device("cpu")), ids_selfplay)
    assert "self-play with agent ids" in (why or "")
    qmix = _cfg("qmix", {})
    assert "trainer_type qmix cannot widen" in (grow.refusal(make_trainer(_spec(2, 2, (5,)), qmix, 1, torch.device("cpu")),
                                                             qmix) or "")


# ------------------------------------------------------------------------------------------ end to end
CONFIG = {"behaviors": {"SoccerTwos": {"trainer_type": "mappo",
                                       "hyperparameters": {"batch_size": 128, "buffer_size": 512, "num_epoch": 1},
                                       "network_settings": {"hidden_units": 16, "num_layers": 1},
                                       "max_steps": 1500, "summary_freq": 100000, "checkpoint_interval": 100000}},
          "env_settings": {"seed": 3, "env_path": STANDIN, "timeout_wait": 30,
                           "env_args": ["--no-rays", "--max-steps", "60", "--extra-agent-step", "20"]},
          "engine_settings": {"no_graphics": True}}


def _run(tmp_path: Path, monkeypatch, max_steps: int, resume: bool = False, env_kwargs: dict | None = None,
         ray: bool = False, **behavior):
    """``train`` in this process (``behavior``: settings over CONFIG's); returns (result, trainers built, [(env
    step, steps of the rollout, trainers built so far, valid experiences per slot of the rollout)], warnings)."""
    data = {**CONFIG, "checkpoint_settings": {"run_id": "grow", "results_dir": str(tmp_path / "results"),
                                              "resume": resume}}
    data["behaviors"] = {"SoccerTwos": {**CONFIG["behaviors"]["SoccerTwos"], **behavior, "max_steps": max_steps}}
    data["env_settings"] = {**data["env_settings"], "base_port": free_port(2, 31000, 33000)}
    if env_kwargs:
        data["env_settings"]["env_kwargs"] = env_kwargs
    if ray:
        data["env_settings"]["ray"] = True
    cfg = cfg_of(data)
    built = []
    real = marl.run.make_trainer

    def recording(*a, **kw):
        built.append(real(*a, **kw))
        return built[-1]

    monkeypatch.setattr(marl.run, "make_trainer", recording)
    rollouts, last = [], [0]

    def hook(step):
        buf = built[-1].collector.buffers["SoccerTwos"]  # (empty on Ray: the runners collect)
        rollouts.append((step, step - last[0], len(built), buf.valid[: buf.t].sum(axis=(0, 1)).tolist()))
        last[0] = step

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = train(cfg, prepare_run_dir(cfg), console=None, tensorboard=False, between_rollouts=hook)
    return out, built, rollouts, [str(w.message) for w in caught]


@pytest.mark.slow
def test_run_grows_slots_trains_the_new_agent_and_resumes_with_them(tmp_path, monkeypatch):
    out, built, rollouts, msgs = _run(tmp_path, monkeypatch, 1500)
    assert out["step"] >= 1500 and not out["interrupted"]
    # sized from the first player (4 slots), grown once to 3 per team after the first rollout
    assert [t.spec.behaviors[0].n_agents for t in built] == [4, 6], msgs
    assert any("agents at once but 2 slots" in m and "grow at the next rollout boundary" in m for m in msgs)
    grew = [m for m in msgs if m.startswith("[INFO] Agent slots grew")]
    assert len(grew) == 1 and "SoccerTwos 2 -> 3 per team" in grew[0]
    first, later = rollouts[0], [r for r in rollouts if r[2] == 2]
    assert len(first[3]) == 4 and later and all(len(r[3]) == 6 for r in later)
    # after growth the third blue slot (index 2) is trained on, and the larger team fills the buffer in fewer steps
    assert all(r[3][2] > 0 for r in later), later
    assert max(r[1] for r in later) < first[1], rollouts
    ck = load_checkpoint(tmp_path / "results" / "grow" / "SoccerTwos" / "checkpoint.pt")
    assert tuple(ck["behavior_spec"]["teams"]) == (0, 0, 0, 1, 1, 1) and ck["state_shape"] == [6 * 16]
    assert saved_agent_slots(tmp_path / "results" / "grow") == {"SoccerTwos": 3}
    # no stale id ever reached a player: every action answered a decision request of a live agent
    logs = (tmp_path / "results" / "grow" / "run_logs" / "Player-0.log").read_text()
    checks = re.findall(r"Action check: (\d+) actions received, (\d+) rejected", logs)
    assert len(checks) == 4 and all(r == "0" for _, r in checks) and sum(int(n) for n, _ in checks) > 1500, checks

    # --resume: the player is probed with the grown slots (the extra agent appears only after the probe)
    out2, built2, rollouts2, msgs2 = _run(tmp_path, monkeypatch, 2500, resume=True)
    assert [t.spec.behaviors[0].n_agents for t in built2] == [6], msgs2
    assert not any("Agent slots grew" in m or "agents at once" in m for m in msgs2)
    assert rollouts2[0][0] > out["step"] and out2["step"] >= 2500


@pytest.mark.slow
def test_self_play_keeps_its_teams_elo_and_window_through_growth(tmp_path, monkeypatch):
    transfers = []
    real = grow.transfer

    def recording(old, new, old_spec, new_spec):
        real(old, new, old_spec, new_spec)
        after = new.extra_state("SoccerTwos")
        transfers.append((old.extra_state("SoccerTwos"), after, new,
                          [Path(e["path"]).is_file() for e in after["selfplay"]["snapshots"]]))

    monkeypatch.setattr(grow, "transfer", recording)
    out, built, rollouts, msgs = _run(tmp_path, monkeypatch, 1000, trainer_type="poca",
                                      self_play={"save_steps": 100, "team_change": 100000, "swap_steps": 100,
                                                 "window": 3})
    assert not out["interrupted"] and [t.spec.behaviors[0].n_agents for t in built] == [4, 6], msgs
    (before, after, new, files), = transfers
    sp = before["selfplay"]
    assert sp["games"] > 0 and sp["snapshots"] and after == before  # Elo, team, counters and window carried over
    assert files and all(files)  # the new ghost's window was read back from the snapshot files
    ghost = new.ghosts["SoccerTwos"]
    assert [t.tolist() for t in ghost.teams] == [[0, 1, 2], [3, 4, 5]] and ghost.learning_team == 0
    assert new.collector.learning["SoccerTwos"].tolist() == [[True] * 3 + [False] * 3]
    # after growth: the learning team's new slot is trained on, the opponents' slots never are
    later = [r for r in rollouts if r[2] == 2]
    assert later and all(r[3][2] > 0 and r[3][3:] == [0, 0, 0] for r in later), later
    ck = load_checkpoint(tmp_path / "results" / "grow" / "SoccerTwos" / "checkpoint.pt")
    assert ck["extra"]["selfplay"]["games"] > sp["games"] and len(ck["behavior_spec"]["agents"]) == 6


@pytest.mark.slow
def test_resume_with_more_slots_widens_the_saved_networks(tmp_path, monkeypatch):
    # one rollout, too short to grow: the checkpoint has 2 slots per team
    out, built, _, _ = _run(tmp_path, monkeypatch, 100)
    assert [t.spec.behaviors[0].n_agents for t in built] == [4]
    saved = load_checkpoint(tmp_path / "results" / "grow" / "SoccerTwos" / "checkpoint.pt")
    assert len(saved["behavior_spec"]["agents"]) == 4
    # resumed with agent_slots preallocating 3 per team: the saved networks are widened, not refused
    loaded = []
    real = grow.load_widened

    def recording(trainer, b, *a, **kw):
        real(trainer, b, *a, **kw)
        loaded.append({k: v.clone() for k, v in trainer.learners[b].critic.state_dict().items()})

    monkeypatch.setattr(grow, "load_widened", recording)
    out2, built2, rollouts2, msgs2 = _run(tmp_path, monkeypatch, 600, resume=True,
                                          env_kwargs={"agent_slots": {"SoccerTwos": 3}})
    assert [t.spec.behaviors[0].n_agents for t in built2] == [6] and out2["step"] >= 600
    assert not any("agents at once" in m for m in msgs2), msgs2
    assert all(r[3][2] > 0 for r in rollouts2)  # the third blue slot is trained on from the first rollout
    # the first dense layer of the critic (after its input LayerNorm): 16 observation columns per slot
    (critic,) = loaded
    w_old, w_new = saved["trainer"]["critic"]["body.1.weight"], critic["body.1.weight"]
    assert w_old.shape[1] == 4 * 16 and w_new.shape[1] == 6 * 16
    assert torch.equal(w_new[:, :32], w_old[:, :32]) and torch.equal(w_new[:, 48:80], w_old[:, 32:64])  # moved
    assert not w_new[:, 32:48].any() and not w_new[:, 80:].any()  # the new slots' columns start at zero


@pytest.mark.slow
def test_ray_runners_are_restarted_with_the_grown_slots(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    out, built, rollouts, msgs = _run(tmp_path, monkeypatch, 700, ray=True)
    assert not out["interrupted"] and out["step"] >= 700 and not ray.is_initialized()
    assert [t.spec.behaviors[0].n_agents for t in built] == [4, 6]
    assert any(m.startswith("[INFO] Agent slots grew") and "2 -> 3 per team" in m for m in msgs), msgs
    steps = [r[1] for r in rollouts]
    assert steps[0] == 128 and max(steps[1:]) < 128, steps  # a third blue agent fills the buffer sooner
    # probe, runner, probe with more slots, new runner on the same port: every action answered a live request
    logs = (tmp_path / "results" / "grow" / "run_logs" / "Player-0.log").read_text()
    checks = re.findall(r"Action check: (\d+) actions received, (\d+) rejected", logs)
    assert len(checks) == 4 and all(r == "0" for _, r in checks), checks
