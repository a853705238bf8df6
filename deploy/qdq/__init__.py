"""The QDQ check: TensorRT's rules (``rules``) over an ONNX graph (``graph``), reported per model
(``report``); ``deploy/qdq_check.py`` is its command line, ``check-qdq``."""
