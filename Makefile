# YOLOv8 traffic signs: PyTorch -> QAT -> INT8 QDQ ONNX -> TensorRT / OpenVINO.
# Every target installs what it needs into .venv; `make demo` and `make test` are all a fresh machine needs.

PYTHON    ?= python3
VENV      := .venv
PY        := $(VENV)/bin/python
TOOLCHAIN := $(PY) -m toolchain.cli
PARITY     = $(TOOLCHAIN) parity --data $(DATA)

# The embedded default: the synthetic traffic-sign set, sized so the demo runs on a 2-core CPU.
DATA      ?= data/synthetic/data.yaml
MODEL     ?= yolov8n.yaml
IMGSZ     ?= 256
EPOCHS    ?= 14
BATCH     ?= 16
DEVICE    ?= cpu
NAME      ?= baseline
WEIGHTS   ?= runs/$(NAME)/weights/best.pt
RESUME    ?=
QUANT     ?= configs/quant.yaml
CALIB     ?= 256
PTQ_ONNX  ?= runs/ptq/$(notdir $(basename $(WEIGHTS))).int8.onnx
QAT_EPOCHS ?= 5
DEMO_QAT_EPOCHS ?= 2
ENGINE_ONNX ?= runs/qat/$(QAT_NAME)/qat.int8.onnx
PRECISION ?= int8
MAX_BATCH ?= 1
JETPACK   ?= 6
QAT_NAME  ?= qat
CONFIG    ?= configs/qat.yaml
# Stages after the baseline take the size the weights were trained at unless IMGSZ is given.
SIZE_FLAG  = $(if $(filter command line,$(origin IMGSZ)),--imgsz $(IMGSZ))
SYN_TRAIN ?= 1000
SYN_VAL   ?= 200
SYN_MIN   ?= 10
SYN_MAX   ?= 100

export YOLO_OFFLINE := 1
export YOLO_CONFIG_DIR := $(CURDIR)/.venv/ultralytics

.PHONY: help docker-gpu docker-jetson setup data check-data baseline export ptq parity qat sensitivity engine bench check-qdq eval bench-cpu gpu-check demo test test-all lint clean

help:
	@echo "make demo | test | test-all | lint | data | check-data | baseline | export | eval | ptq | parity | qat |"
	@echo "     sensitivity | engine | bench | bench-cpu | gpu-check | check-qdq | docker-gpu | docker-jetson | clean"
	@echo "Variables: DATA WEIGHTS MODEL IMGSZ EPOCHS BATCH DEVICE NAME RESUME QAT_NAME QAT_EPOCHS PRECISION PEER"

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
	$(TOOLCHAIN) data --out $(dir $(DATA)) --train $(SYN_TRAIN) --val $(SYN_VAL) --imgsz $(IMGSZ) \
		--min-size $(SYN_MIN) --max-size $(SYN_MAX)

check-data: setup
	$(TOOLCHAIN) check-data --data $(DATA)

baseline: setup
	$(TOOLCHAIN) baseline --config configs/baseline.yaml --data $(DATA) --model $(if $(filter command line,$(origin WEIGHTS)),$(WEIGHTS),$(MODEL)) \
		--imgsz $(IMGSZ) --epochs $(EPOCHS) --batch $(BATCH) --device $(DEVICE) --name $(NAME) $(if $(RESUME),--resume)

export: setup
	$(TOOLCHAIN) export --weights $(WEIGHTS) $(SIZE_FLAG)

ptq: setup
	$(TOOLCHAIN) ptq --weights $(WEIGHTS) --data $(DATA) $(SIZE_FLAG) --num-images $(CALIB) \
		--quant-config $(QUANT) --out $(PTQ_ONNX) --fp32
	$(TOOLCHAIN) check-qdq $(PTQ_ONNX)
	$(PARITY) --model $(basename $(PTQ_ONNX)).pt --onnx $(PTQ_ONNX)

parity: setup
	$(PARITY) --model $(basename $(PTQ_ONNX)).pt --onnx $(PTQ_ONNX)

qat: setup
	$(TOOLCHAIN) qat --config $(CONFIG) --weights $(WEIGHTS) --data $(DATA) $(SIZE_FLAG) --epochs $(QAT_EPOCHS) \
		--device $(DEVICE) --name $(QAT_NAME) $(if $(RESUME),--resume)
	$(TOOLCHAIN) check-qdq runs/qat/$(QAT_NAME)/qat.int8.onnx
	$(PARITY) --model runs/qat/$(QAT_NAME)/weights/best.pt --onnx runs/qat/$(QAT_NAME)/qat.int8.onnx

sensitivity: setup
	$(TOOLCHAIN) sensitivity --weights $(WEIGHTS) --data $(DATA) $(SIZE_FLAG) --quant-config $(QUANT) \
		$(if $(KEEP_FLOAT),--keep-float $(KEEP_FLOAT)) --out runs/sensitivity

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
	$(TOOLCHAIN) eval --weights $(WEIGHTS) --data $(DATA) $(SIZE_FLAG) --json runs/$(NAME)/eval.json

demo: data baseline
	$(TOOLCHAIN) qat --config $(CONFIG) --weights $(WEIGHTS) --data $(DATA) --epochs $(DEMO_QAT_EPOCHS) \
		--device $(DEVICE) --name demo $(if $(RESUME),--resume)
	$(TOOLCHAIN) check-qdq runs/qat/demo/qat.int8.onnx
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
