"""The engine benchmark (``python -m deploy.bench``): FP32, FP16, INT8 PTQ and INT8 QAT engines of a ``make qat``
run, on TensorRT, or ONNX Runtime standing in where TensorRT is not. Torch-free: it ships in both images."""
