"""Built-in images and datasets are there offline and follow the course conventions."""

from __future__ import annotations

import pytest
import torch

from nstlab import data


@pytest.mark.parametrize("name", data.list_images())
def test_every_builtin_image_loads_as_rgb_in_unit_range(name: str):
    x = data.builtin_image(name, size=64)
    assert x.ndim == 4 and x.shape[:2] == (1, 3) and max(x.shape[-2:]) == 64
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_there_are_content_and_style_images():
    assert len(data.list_images("content")) >= 3 and len(data.list_images("style")) >= 3


def test_generated_styles_are_deterministic(tmp_path, monkeypatch):
    a = data._draw_mosaic(64, 0)
    assert (a == data._draw_mosaic(64, 0)).all() and not (a == data._draw_mosaic(64, 1)).all()


def test_unknown_image_lists_known_names():
    with pytest.raises(KeyError, match="no built-in image called 'mona'.*astronaut"):
        data.builtin_image("mona")


def test_open_image_takes_a_name_or_a_path(tmp_path):
    from nstlab.images import save_image

    path = save_image(torch.zeros(1, 3, 40, 40), tmp_path / "z.png")
    assert data.open_image(str(path)).shape == (1, 3, 40, 40)
    assert data.open_image("coffee", size=64).shape[-1] == 64


def test_logic_gates_are_truth_tables():
    X, y = data.logic_gate("xor")
    assert X.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]] and y.tolist() == [0, 1, 1, 0]
    with pytest.raises(KeyError, match="xnor"):
        data.logic_gate("xnor")


def test_digits_split_is_disjoint_seeded_and_complete():
    a, b = data.digits(seed=0), data.digits(seed=0)
    assert torch.equal(a.x_train, b.x_train)
    assert len(a.y_train) + len(a.y_test) == 1797
    assert a.x_train.shape[1:] == (1, 8, 8) and a.x_train.max() <= 1
    assert set(a.y_test.tolist()) == set(range(10))
    assert len(data.digits(limit=100).y_train) == 100
    with pytest.raises(ValueError, match="test_fraction"):
        data.digits(test_fraction=1.5)
