"""augment.enabled follows the data: on for pictures near the model's input size, off for scaled-up thumbnails."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tunesmith import config
from tunesmith.data.images import check_images
from tunesmith.data.validate import DataReport
from tunesmith.tasks import get_task


def data_of(sides: list[int], input_size: int = 224) -> SimpleNamespace:
    """Task data whose training images are squares of the given sides, checked as check_inputs checks them."""
    inputs = [SimpleNamespace(pixels=np.zeros((s, s, 3), np.uint8), mode="RGB", source=f"img{i}.png")
              for i, s in enumerate(sides)]  # fmt: skip
    report = DataReport()
    report.stats["images"] = {"train": check_images(Split(inputs), input_size, report)}
    return SimpleNamespace(report=report)


class Split:
    """What check_images reads of a split."""

    def __init__(self, inputs: list[SimpleNamespace]):
        self.inputs, self.lines, self.source = inputs, list(range(2, len(inputs) + 2)), "train.csv"

    def __len__(self) -> int:
        return len(self.inputs)


def augment_default(data: SimpleNamespace, **augment: object) -> dict[str, object]:
    cfg = config.from_dict({"task": "image-classification", "data": {"train": "t.npz"}, "augment": augment})
    task = get_task("image-classification")
    return {d.key: (d.value, d.why) for d in task(cfg).open_defaults(cfg, None, data)}


def test_thumbnails_train_without_augmentation():
    data = data_of([28] * 6 + [224] * 4)
    assert data.report.stats["images"]["train"]["under_quarter_input"] == 6
    assert any(p.check == "small_images" for p in data.report.warnings)
    value, why = augment_default(data)["augment.enabled"]
    assert value is False and why.startswith("6 of 10 training images are under a quarter")


def test_photos_near_the_input_size_are_augmented():
    value, why = augment_default(data_of([28] * 4 + [160] * 6))["augment.enabled"]
    assert value is True and why.startswith("6 of 10 training images are at least a quarter")


def test_a_config_that_names_augmentation_is_left_as_it_is():
    assert augment_default(data_of([28] * 10), enabled=True) == {}
    assert augment_default(data_of([300] * 10), enabled=False) == {}


def squares(sides: list[int]) -> Split:
    return Split([SimpleNamespace(pixels=np.zeros((s, s, 3), np.uint8), mode="RGB", source="x") for s in sides])


def test_small_pictures_train_a_convolutional_model_at_160_px_and_photos_at_its_own_side():
    from tunesmith.tasks.image_classification.task import input_side
    from tunesmith.tasks.image_classification.vision import EFFICIENTNET_PREPROCESS

    side, why = input_side(EFFICIENTNET_PREPROCESS, None, squares([28] * 6 + [224] * 4), DataReport())
    assert side == 160 and why.startswith("6 of 10 training images are under a quarter of the model's 224 px")
    assert input_side(EFFICIENTNET_PREPROCESS, None, squares([28] * 5 + [224] * 5), DataReport())[0] == 224
    assert input_side(EFFICIENTNET_PREPROCESS, 96, squares([28] * 10), DataReport()) == (96, "set in config")


def test_a_transformer_keeps_its_own_side_and_refuses_another():
    from tunesmith.errors import DataError
    from tunesmith.tasks.image_classification.task import input_side
    from tunesmith.tasks.image_classification.vision import EFFICIENTNET_PREPROCESS, Preprocess

    vit = Preprocess(224, (127.5,) * 3, (127.5,) * 3)
    assert input_side(vit, None, squares([28] * 10), DataReport()) == (224, "the model's own input")
    assert input_side(vit, 224, squares([28] * 10), DataReport())[0] == 224
    for pre, side, says in ((vit, 160, "fixed at 224 px"), (EFFICIENTNET_PREPROCESS, 16, "at least 32 px")):
        report = DataReport()
        with pytest.raises(DataError):
            input_side(pre, side, squares([28] * 10), report)
        assert report.errors[0].field == "train.max_length" and says in report.errors[0].message
