# YOLOv8 traffic signs: PyTorch -> QAT -> INT8 QDQ ONNX -> TensorRT / OpenVINO.
# Every target installs what it needs into .venv; `make demo` and `make test` are all a fresh machine needs.

PYTHON    ?= python3
VENV      := .venv
PY        := $(VENV)/bin/python
TOOLCHAIN := $(PY) -m toolchain.cli
PARITY     = $(TOOLCHAIN) parity --data $(DATA)

# Settings live in the configs (the dataclasses' defaults; configs/*.yaml for what the demo changes).
# A setting given here (make EPOCHS=3, or in the environment) becomes its flag; one not given is not
# passed, so the config decides: $(call flag,EPOCHS,--epochs) is '--epochs 3' or nothing.
flag = $(if $(filter command line environment,$(origin $(1))),$(2) $($(1)))
SETTINGS = $(call flag,IMGSZ,--imgsz) $(call flag,DEVICE,--device)

# Paths that join the stages (the embedded default: the synthetic set, runs/ under the repository).
DATA      ?= data/synthetic/data.yaml
NAME      ?= baseline
WEIGHTS   ?= runs/$(NAME)/weights/best.pt
PTQ_ONNX  ?= runs/ptq/$(notdir $(basename $(WEIGHTS))).int8.onnx
QAT_NAME  ?= qat
CONFIG    ?= configs/qat.yaml
ENGINE_ONNX ?= runs/qat/$(QAT_NAME)/qat.int8.onnx
DEMO_QAT_EPOCHS ?= 1
JETPACK   ?= 6
RESUME    ?=
# QAT on several processes: NPROC per node under torchrun (make qat NPROC=4 is torchrun --standalone
# --nproc-per-node 4 -m toolchain.cli qat ...). Several nodes: the same make line on every node with
# NNODES and RDZV_ENDPOINT (host:port of node 0, reachable from all). BATCH-like flags are per process.
NPROC     ?= 1
NNODES    ?= 1
RDZV_ENDPOINT ?=
TORCHRUN   = $(PY) -m torch.distributed.run --nproc-per-node $(NPROC) $(if $(RDZV_ENDPOINT),--nnodes $(NNODES) \
	--rdzv-backend c10d --rdzv-endpoint $(RDZV_ENDPOINT) --rdzv-id $(QAT_NAME),--standalone) -m toolchain.cli
QAT_CLI    = $(if $(or $(filter-out 1,$(NPROC)),$(RDZV_ENDPOINT)),$(TORCHRUN),$(TOOLCHAIN))

export YOLO_OFFLINE := 1
export YOLO_CONFIG_DIR := $(CURDIR)/.venv/ultralytics

.PHONY: test-isa help docker-gpu docker-jetson setup data hard-case check-data baseline export ptq parity qat analyze sensitivity engine fake-engine real-api trt-api bench check-qdq eval bench-cpu gpu-check demo test test-all lint clean

help:
	@echo "make demo | test | test-all | lint | data | hard-case | check-data | baseline | export | eval | ptq | parity | qat |"
	@echo "     analyze | sensitivity | engine | fake-engine | real-api | trt-api | bench | bench-cpu | gpu-check | check-qdq |"
	@echo "     docker-gpu | docker-jetson (JETPACK: $(JETPACKS)) | clean"
	@echo "Variables: DATA WEIGHTS MODEL IMGSZ EPOCHS HOURS BATCH DEVICE NAME RESUME QAT_NAME QAT_EPOCHS CALIB QUANT"
	@echo "           NPROC NNODES RDZV_ENDPOINT (make qat under torchrun)"
	@echo "           TILE_DATA TILE_K KEEP_FLOAT ANALYZE_OUT CONFIG SYN_TRAIN SYN_VAL SYN_MIN SYN_MAX PRECISION MAX_BATCH ENGINE_ONNX TRT PEER"
	@echo "           BENCH_RUNS BENCH_FRAMES BENCH_RESAMPLES (each flag: toolchain CMD --help)"

docker-gpu:
	docker build -f docker/Dockerfile.gpu -t yolo-trt-qat:gpu .

# The JetPack versions docker/Dockerfile.jetson has a stage for (FROM ... AS jetpack<version>).
JETPACKS = $(patsubst jetpack%,%,$(shell sed -n 's/^FROM .* AS \(jetpack[0-9.]*\)$$/\1/p' docker/Dockerfile.jetson))

docker-jetson:
	@$(if $(filter $(JETPACK),$(JETPACKS)),true,echo "make docker-jetson: JETPACK=$(JETPACK) is not a JetPack" \
		"docker/Dockerfile.jetson builds for; one of: $(JETPACKS) (the JetPack flashed on the device)" >&2; exit 2)
	docker build -f docker/Dockerfile.jetson --build-arg JETPACK=$(JETPACK) -t yolo-trt-qat:jetson-jp$(JETPACK) .

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps --upgrade --target $(VENV)/cuda-bindings/12 'cuda-bindings==12.9.*'
	$(PY) -m pip install -q --no-deps --upgrade --target $(VENV)/cuda-bindings/11.8 'cuda-bindings==11.8.7'
	touch $@

# The synthetic set into the folder of $(1) (a data.yaml path).
synthetic = $(TOOLCHAIN) data --config configs/data.yaml --out $(dir $(1)) $(call flag,IMGSZ,--imgsz) \
	$(call flag,SYN_TRAIN,--train) $(call flag,SYN_VAL,--val) $(call flag,SYN_MIN,--min-size) $(call flag,SYN_MAX,--max-size)

data: setup
	$(call synthetic,$(DATA))

# What a fresh clone lacks is made on demand and reused once it exists (order-only: never rebuilt
# because something is newer): a missing .../synthetic/data.yaml is generated (another missing DATA
# stops make: "No rule to make target"), a missing runs/NAME/weights/best.pt is trained as baseline NAME.
%/synthetic/data.yaml: | $(VENV)/.installed
	$(call synthetic,$@)

# The hard case (docs/data.md#the-hard-case-small-signs-make-hard-case): small signs, where INT8 loses first.
# The hard synthetic mode, and TILE_DATA's photos tiled k x k for k in TILE_K (every sign k times smaller), when
# TILE_DATA is there (default: the real road-signs set beside the repository). Each set is reused once made.
TILE_DATA ?= ../shared/datasets/road-signs/data.yaml
TILE_K    ?= 2 3
TILE_NAME  = $(notdir $(patsubst %/,%,$(dir $(abspath $(TILE_DATA)))))
hard-case: setup
	$(TOOLCHAIN) data --config configs/data-hard.yaml --out data/hard/synthetic-hard
	@if [ -f "$(TILE_DATA)" ]; then for k in $(TILE_K); do \
		echo "$(TOOLCHAIN) tile-data --data $(TILE_DATA) --out data/hard/$(TILE_NAME)-k$$k --k $$k"; \
		$(TOOLCHAIN) tile-data --data $(TILE_DATA) --out data/hard/$(TILE_NAME)-k$$k --k $$k || exit 1; done; \
	else echo "make hard-case: $(TILE_DATA) is absent, so no tiled set (TILE_DATA=path/to/data.yaml tiles yours)" >&2; fi

check-data: setup
	$(TOOLCHAIN) check-data --data $(DATA)

# The FP32 baseline named $(1).
train_baseline = $(TOOLCHAIN) baseline --config configs/baseline.yaml --data $(DATA) --name $(1) $(SETTINGS) \
	$(call flag,MODEL,--model) $(call flag,EPOCHS,--epochs) $(call flag,HOURS,--hours) $(call flag,BATCH,--batch)

baseline: setup
	$(call train_baseline,$(NAME)) $(call flag,WEIGHTS,--model) $(if $(RESUME),--resume)

runs/%/weights/best.pt: | $(DATA) $(VENV)/.installed
	$(call train_baseline,$*)

export: setup
	$(TOOLCHAIN) export --weights $(WEIGHTS) $(call flag,IMGSZ,--imgsz)

ptq: setup
	$(TOOLCHAIN) ptq --weights $(WEIGHTS) --data $(DATA) --out $(PTQ_ONNX) --fp32 $(SETTINGS) \
		$(call flag,CALIB,--num-images) $(call flag,QUANT,--quant-config)
	$(TOOLCHAIN) check-qdq $(PTQ_ONNX)
	$(PARITY) --model $(basename $(PTQ_ONNX)).pt --onnx $(PTQ_ONNX)

parity: setup
	$(PARITY) --model $(basename $(PTQ_ONNX)).pt --onnx $(PTQ_ONNX)

qat: setup $(DATA) $(WEIGHTS)
	$(QAT_CLI) qat --config $(CONFIG) --weights $(WEIGHTS) --data $(DATA) --name $(QAT_NAME) $(SETTINGS) \
		$(call flag,QAT_EPOCHS,--epochs) $(call flag,QUANT,--quant-config) $(if $(RESUME),--resume)
	$(PARITY) --model runs/qat/$(QAT_NAME)/weights/best.pt --onnx runs/qat/$(QAT_NAME)/qat.int8.onnx
	$(TOOLCHAIN) analyze --weights runs/qat/$(QAT_NAME)/weights/best.pt --data $(DATA) --out runs/qat/$(QAT_NAME)/analysis \
		$(SETTINGS)

# The quantization report of WEIGHTS, FP32 against INT8 (an FP32 .pt: PTQ on CALIB train images; a QAT or PTQ
# checkpoint: its own quantizers): report.md, report.json and plots in ANALYZE_OUT (default runs/analyze).
analyze: setup
	$(TOOLCHAIN) analyze --weights $(WEIGHTS) --data $(DATA) $(SETTINGS) $(call flag,ANALYZE_OUT,--out) \
		$(call flag,CALIB,--calib-images) $(call flag,QUANT,--quant-config)

sensitivity: setup
	$(TOOLCHAIN) sensitivity --weights $(WEIGHTS) --data $(DATA) --out runs/sensitivity $(SETTINGS) \
		$(call flag,QUANT,--quant-config) $(call flag,KEEP_FLOAT,--keep-float)

# $(1) (deploy.engine.build, or it on a fake TensorRT) builds $(ENGINE_ONNX) and prints the engine's path
# last; then model.<precision>.engine (+ .json) here links to it: infer.py --engine model.int8.engine.
ENGINE_FLAGS = $(call flag,PRECISION,--precision) $(call flag,MAX_BATCH,--max-batch) --timing-cache runs/timing.cache
define engine_and_link
@out=$$($(1) $(ENGINE_ONNX) $(ENGINE_FLAGS)) || exit $$?; \
	printf '%s\n' "$$out"; engine=$$(printf '%s\n' "$$out" | tail -n 1); stem=$${engine%.engine}; \
	link=model.$${stem##*.}.engine; target=$$($(PY) -c 'import os, sys; print(os.path.relpath(sys.argv[1]))' "$$engine"); \
	ln -sfn "$$target" "$$link" && ln -sfn "$$target.json" "$$link.json" && echo "$$link -> $$target"
endef

# Without TensorRT: one line (what is missing, what to run instead), exit 1.
engine: setup
	@$(PY) -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("tensorrt") is None)' || { echo \
		"make engine: $(PY) cannot import tensorrt (NVIDIA's container has it: make docker-gpu; on a Jetson, JetPack's" \
		"is seen by a venv made with python3 -m venv --system-site-packages $(VENV)); instead, here: make bench (the ONNX" \
		"on OpenVINO and ONNX Runtime) or make fake-engine (the build on a fake TensorRT)" >&2; exit 1; }
	$(call engine_and_link,$(PY) -m deploy.engine.build)

# make engine's builder on a fake TensorRT made from NVIDIA's real API of version TRT (tests/fakes): the engine
# file is the fake's, the sidecar the real one (precision, strongly typed, layer report).
fake-engine: setup
	$(call engine_and_link,$(PY) -m tests.fakes.run_engine $(or $(TRT),11.4))

# Every TensorRT path (build, runner, CUDA graphs) on each version's real API; call sites per version.
real-api: setup
	$(PY) -m tests.fakes.paths

# Regenerate tests/data/trt_api/ (each TensorRT version's Python API, from NVIDIA's bindings on PyPI).
trt-api: setup
	PYTHON=$(PY) bash tools/trt_api/make.sh

bench: setup
	$(PY) -m benchmarks.run --run runs/qat/$(QAT_NAME) --data $(DATA) --name $(QAT_NAME) $(if $(PEER),--peer $(PEER)) \
		$(call flag,BENCH_RUNS,--runs) $(call flag,BENCH_FRAMES,--frames) $(call flag,BENCH_RESAMPLES,--resamples)

# On a machine with TensorRT: tests, engines, accuracy, latency, layers, video -> benchmarks/results/gpu-check/.
# Elsewhere: one "skipped" line, exit 0. Defaults to ../shared's road-signs baseline unless WEIGHTS/DATA are given.
gpu-check: setup
	$(PY) -m benchmarks.gpu_check $(if $(filter command line,$(origin WEIGHTS)),--weights $(WEIGHTS)) \
		$(if $(filter command line,$(origin DATA)),--data $(DATA)) $(if $(PEER),--peer $(PEER))

check-qdq: setup
	$(TOOLCHAIN) check-qdq $(PTQ_ONNX)

bench-cpu: setup
	$(PY) -m benchmarks.openvino_int8 --fp32 $(subst .int8,,$(PTQ_ONNX)) --int8 $(PTQ_ONNX) --data $(DATA)

eval: setup
	$(TOOLCHAIN) eval --weights $(WEIGHTS) --data $(DATA) --json runs/$(NAME)/eval.json $(SETTINGS)

# On a machine without TensorRT the engine rows would repeat the ONNX Runtime rows: the demo leaves them to make bench.
DEMO_ENGINES = $(shell $(PY) -c 'import importlib.util as u; print("" if u.find_spec("tensorrt") else "--no-engines")' 2>/dev/null)
demo: data baseline
	$(TOOLCHAIN) qat --config $(CONFIG) --weights $(WEIGHTS) --data $(DATA) --epochs $(DEMO_QAT_EPOCHS) --name demo \
		$(call flag,DEVICE,--device) $(if $(RESUME),--resume)
	$(PARITY) --model runs/qat/demo/weights/best.pt --onnx runs/qat/demo/qat.int8.onnx
	$(PY) -m benchmarks.run --run runs/qat/demo --data $(DATA) --name demo --runs $(or $(BENCH_RUNS),40) \
		--frames $(or $(BENCH_FRAMES),60) --resamples $(or $(BENCH_RESAMPLES),500) $(DEMO_ENGINES)

test: setup
	@$(PY) -m deploy.cpu
	$(PY) -m pytest -m "not slow" -q

# The tests whose arithmetic depends on the CPU (OpenVINO INT8, distributed QAT, parity), under every
# oneDNN instruction-set cap this machine can take and with 1 and 2 threads.
ISA_TESTS ?= tests/deploy/runtime tests/toolchain/distributed/test_loss.py tests/toolchain/export/test_parity.py \
	tests/toolchain/jobs/test_parity.py
test-isa: setup
	@for isa in $$($(PY) -c 'from deploy.cpu import supported_isas; print(" ".join(supported_isas()))') native; do \
		for t in 1 2; do echo "== ONEDNN_MAX_CPU_ISA=$$isa, $$t thread(s)"; \
		env $$([ $$isa = native ] || echo ONEDNN_MAX_CPU_ISA=$$isa) OMP_NUM_THREADS=$$t \
			$(PY) -m pytest -q -p no:cacheprovider $(ISA_TESTS) || exit 1; done; done

test-all: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check base toolchain deploy benchmarks tests

clean:
	rm -rf runs data .pytest_cache model.*.engine model.*.engine.json
