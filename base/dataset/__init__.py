"""Datasets in ultralytics' YOLO format: ``data.yaml`` loading and label checks, torch-free.

The evaluator reads its ground truth through this module, and the training half checks data with
it before handing the same ``data.yaml`` to ultralytics.

Example:
    >>> spec = load_data_yaml("../shared/datasets/road-signs/data.yaml")
    >>> split = load_split(spec, "val")
    >>> print(split.summary())

The parts: ``data_yaml`` (the file), ``images`` (listing and decoding), ``labels`` (label lines),
``split`` (a checked split); their public names are importable from here.
"""

from base.dataset.data_yaml import DatasetSpec, load_data_yaml
from base.dataset.images import IMAGE_SUFFIXES, list_images, read_image
from base.dataset.labels import label_path, parse_label_line, read_labels
from base.dataset.split import ImageRecord, Split, load_image_record, load_split

__all__ = [
    "IMAGE_SUFFIXES", "DatasetSpec", "ImageRecord", "Split", "label_path", "list_images", "load_data_yaml",
    "load_image_record", "load_split", "parse_label_line", "read_image", "read_labels",
]  # fmt: skip
