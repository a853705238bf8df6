"""``TrainConfig``'s ``augment`` check: keys against ultralytics' settings, values through its checker,
which is imported only when there is something to check."""

from __future__ import annotations

import subprocess
import sys

import pytest

from toolchain.config.fields import FieldError
from toolchain.training.config import AUGMENTATIONS, TrainConfig, check_augment


def test_accepted_overrides_are_kept(tiny_dataset):
    cfg = TrainConfig(data=str(tiny_dataset), augment={"fliplr": 0.0, "scale": 0.3})
    assert cfg.augment == {"fliplr": 0.0, "scale": 0.3} and "mosaic" not in AUGMENTATIONS


@pytest.mark.parametrize(
    ("augment", "key", "message"),
    [
        ({"mosaic": 0.5}, "augment['mosaic']", "mosaic is a setting of its own: use --mosaic"),
        ({"blur": 1}, "augment['blur']", "not an augmentation setting; expected one of hsv_h, "),
        ({"fliplr:0": None}, "augment['fliplr:0']", "YAML needs a space after the colon"),
        ({"fliplr": 2}, "augment['fliplr']", "'fliplr=2' is an invalid value"),
        ({"hsv_h": "x"}, "augment['hsv_h']", "'hsv_h=x' is of invalid type str"),
    ],
)
def test_a_wrong_override_names_its_key(tiny_dataset, augment, key, message):
    with pytest.raises(FieldError) as direct:
        check_augment(augment)
    with pytest.raises(FieldError) as built:
        TrainConfig(data=str(tiny_dataset), augment=augment)
    for error in (direct.value, built.value):
        assert error.key == key and message in error.message, error


def test_no_overrides_leave_ultralytics_unimported():
    code = ("import sys; from toolchain.training.config import check_augment; check_augment({}); "
            "assert not [m for m in sys.modules if m.startswith('ultralytics')]; "
            "check_augment({'fliplr': 0.5}); assert 'ultralytics.cfg' in sys.modules")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
