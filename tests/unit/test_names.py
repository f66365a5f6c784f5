"""Container names: Docker's rule and the hostname rule together."""

from __future__ import annotations

import pytest

from dockbed.errors import InvalidName
from dockbed.lab.names import batch_names, check_name


@pytest.mark.parametrize("name", ["lab-1", "ab", "Node7", "a" * 63, "x1-y2-z3"])
def test_valid_names_pass(name: str) -> None:
    check_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "a", "-lab", "lab-", "lab_1", "lab.1", "lab 1", "läb", "a" * 64, "/lab"],
)
def test_invalid_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidName) as caught:
        check_name(name)
    assert repr(name) in caught.value.message
    assert caught.value.hint is not None and "63" in caught.value.hint
    assert caught.value.field == "name"


def test_batch_names_count_from_one() -> None:
    assert batch_names("lab", 3) == ["lab-1", "lab-2", "lab-3"]


def test_batch_prefix_too_long_for_the_last_name_is_refused() -> None:
    prefix = "p" * 60
    assert batch_names(prefix, 9)[-1] == prefix + "-9"
    with pytest.raises(InvalidName) as caught:
        batch_names(prefix, 100)
    assert caught.value.field == "prefix"
    assert "batch of 100" in caught.value.message


def test_bad_prefix_is_refused_as_prefix() -> None:
    with pytest.raises(InvalidName) as caught:
        batch_names("bad prefix", 2)
    assert caught.value.field == "prefix"
