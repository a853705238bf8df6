"""Jobs: the stages (quantization, export, training) composed into what a command does; only jobs write
artefacts (ONNX, checkpoints, sidecars, records, reports)."""
