"""A GPU machine without a GPU: fake TensorRT per version (from NVIDIA's real bindings), pycuda per its
sources, the real cuda-python simulated on a fake CUDA device that knows contexts and threads.

- ``env.fake_gpu(version)``: install them for a ``with`` block.
- ``paths``: every TensorRT code path of ours; ``python -m tests.fakes.paths`` prints call sites per version.
- ``run_engine``: ``python -m tests.fakes.run_engine 11.4 MODEL.onnx`` builds an engine on a fake version.
"""
