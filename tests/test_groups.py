"""core.groups: group index tensors from the three user forms."""

import pytest
import torch

from skattr.core.groups import group_matrix, make_groups, sum_over_groups

COLS = ["a", "b", "c", "d"]


def test_none_is_identity():
    groups, names = make_groups(None, COLS)
    assert groups.tolist() == [0, 1, 2, 3] and names == COLS


def test_dict_by_name_and_position():
    groups, names = make_groups({"cd": ["c", 3], "ab": [0, "b"]}, COLS)
    assert groups.tolist() == [1, 1, 0, 0] and names == ["cd", "ab"]  # key order


def test_mask_groups_in_increasing_id_order():
    groups, names = make_groups([7, 3, 7, 5], COLS)  # ids with gaps keep their order
    assert groups.tolist() == [2, 0, 2, 1] and names == ["b", "d", "a+c"]
    groups, names = make_groups([1, 0, 1, 2], COLS)
    assert groups.tolist() == [1, 0, 1, 2] and names == ["b", "a+c", "d"]


def test_dict_groups_then_ungrouped_columns_in_order():
    groups, names = make_groups({"g0": ["d"], "g1": ["b", "a"]}, COLS)
    assert names == ["g0", "g1", "c"] and groups.tolist() == [1, 1, 2, 0]


def test_name_clash_with_ungrouped_column():
    with pytest.raises(ValueError, match="'d' is also the name of a column"):
        make_groups({"d": ["a", "b"]}, COLS)


def test_mask_errors():
    with pytest.raises(TypeError, match="integer group ids"):
        make_groups([0.5, 1, 1, 1], COLS)
    with pytest.raises(ValueError, match="empty"):
        make_groups({"g": []}, COLS)


def test_maps_between_groups_and_columns():
    groups = torch.tensor([0, 1, 0, 2])
    assert group_matrix(groups).int().tolist() == [
        [1, 0, 1, 0],
        [0, 1, 0, 0],
        [0, 0, 0, 1],
    ]
    mask = torch.tensor([[True, False, True]])
    assert mask[..., groups].tolist() == [[True, False, True, True]]
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert sum_over_groups(values, groups).tolist() == [[4.0, 2.0, 4.0]]
