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
DEMO_QAT_EPOCHS ?= 2
PRECISION ?= int8
MAX_BATCH ?= 1
JETPACK   ?= 6
RESUME    ?=

export YOLO_OFFLINE := 1
export YOLO_CONFIG_DIR := $(CURDIR)/.venv/ultralytics

.PHONY: help docker-gpu docker-jetson setup data check-data baseline export ptq parity qat sensitivity engine bench check-qdq eval bench-cpu gpu-check demo test test-all lint clean

help:
	@echo "make demo | test | test-all | lint | data | check-data | baseline | export | eval | ptq | parity | qat |"
	@echo "     sensitivity | engine | bench | bench-cpu | gpu-check | check-qdq | docker-gpu | docker-jetson | clean"
	@echo "Variables: DATA WEIGHTS MODEL IMGSZ EPOCHS BATCH DEVICE NAME RESUME QAT_NAME QAT_EPOCHS CALIB QUANT"
	@echo "           KEEP_FLOAT CONFIG SYN_TRAIN SYN_VAL SYN_MIN SYN_MAX PRECISION PEER (each flag: toolchain CMD --help)"

docker-gpu:
	docker build -f docker/Dockerfile.gpu -t yolo-trt-qat:gpu .

docker-jetson:
	docker build -f docker/Dockerfile.jetson --build-arg JETPACK=$(JETPACK) -t yolo-trt-qat:jetson-jp$(JETPACK) .

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

data: setup
	$(TOOLCHAIN) data --config configs/data.yaml --out $(dir $(DATA)) $(call flag,IMGSZ,--imgsz) \
		$(call flag,SYN_TRAIN,--train) $(call flag,SYN_VAL,--val) $(call flag,SYN_MIN,--min-size) $(call flag,SYN_MAX,--max-size)

check-data: setup
	$(TOOLCHAIN) check-data --data $(DATA)

baseline: setup
	$(TOOLCHAIN) baseline --config configs/baseline.yaml --data $(DATA) --name $(NAME) $(SETTINGS) \
		$(call flag,MODEL,--model) $(call flag,WEIGHTS,--model) $(call flag,EPOCHS,--epochs) $(call flag,BATCH,--batch) \
		$(if $(RESUME),--resume)

export: setup
	$(TOOLCHAIN) export --weights $(WEIGHTS) $(call flag,IMGSZ,--imgsz)

ptq: setup
	$(TOOLCHAIN) ptq --weights $(WEIGHTS) --data $(DATA) --out $(PTQ_ONNX) --fp32 $(SETTINGS) \
		$(call flag,CALIB,--num-images) $(call flag,QUANT,--quant-config)
	$(TOOLCHAIN) check-qdq $(PTQ_ONNX)
	$(PARITY) --model $(basename $(PTQ_ONNX)).pt --onnx $(PTQ_ONNX)

parity: setup
	$(PARITY) --model $(basename $(PTQ_ONNX)).pt --onnx $(PTQ_ONNX)

qat: setup
	$(TOOLCHAIN) qat --config $(CONFIG) --weights $(WEIGHTS) --data $(DATA) --name $(QAT_NAME) $(SETTINGS) \
		$(call flag,QAT_EPOCHS,--epochs) $(call flag,QUANT,--quant-config) $(if $(RESUME),--resume)
	$(PARITY) --model runs/qat/$(QAT_NAME)/weights/best.pt --onnx runs/qat/$(QAT_NAME)/qat.int8.onnx

sensitivity: setup
	$(TOOLCHAIN) sensitivity --weights $(WEIGHTS) --data $(DATA) --out runs/sensitivity $(SETTINGS) \
		$(call flag,QUANT,--quant-config) $(call flag,KEEP_FLOAT,--keep-float)

engine: setup
	$(PY) -m deploy.engine.build $(ENGINE_ONNX) --precision $(PRECISION) --max-batch $(MAX_BATCH) \
		--timing-cache runs/timing.cache

bench: setup
	$(PY) -m benchmarks.run --run runs/qat/$(QAT_NAME) --data $(DATA) --name $(QAT_NAME) $(if $(PEER),--peer $(PEER))

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

demo: data baseline
	$(TOOLCHAIN) qat --config $(CONFIG) --weights $(WEIGHTS) --data $(DATA) --epochs $(DEMO_QAT_EPOCHS) --name demo \
		$(call flag,DEVICE,--device) $(if $(RESUME),--resume)
	$(PARITY) --model runs/qat/demo/weights/best.pt --onnx runs/qat/demo/qat.int8.onnx
	$(PY) -m benchmarks.run --run runs/qat/demo --data $(DATA) --name demo

test: setup
	$(PY) -m pytest -m "not slow" -q

test-all: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check toolchain deploy benchmarks tests

clean:
	rm -rf runs data .pytest_cache
