"""The declarative parameter constraints and their one checking helper."""

from __future__ import annotations

import math

import pytest

from stratify._constraints import (
    NONE,
    Interval,
    InvalidParameterError,
    Options,
    Satisfies,
    invalid_values,
    module_instance,
    validate_params,
)


@pytest.mark.parametrize(
    ("interval", "inside", "outside"),
    [
        (Interval(int, 1, closed="left"), [1, 2, 10**9], [0, -1, 1.0, 2.5, True, "1"]),
        (Interval(float, 0, closed="neither"), [1e-12, 3, 0.5], [0, 0.0, -1, math.nan, None]),
        (Interval(float, 0, 1, closed="both"), [0, 1, 0.5], [-1e-9, 1.000001, math.inf]),
        (Interval(float, 0, 1, closed="right"), [1, 0.1], [0, 2]),
    ],
)
def test_interval_accepts_exactly_its_numbers(interval, inside, outside):
    assert all(interval.accepts(v) for v in inside)
    assert not any(interval.accepts(v) for v in outside)


def test_descriptions_follow_scikit_learn_wording():
    assert Interval(int, 1, closed="left").describe() == "an int in the range [1, inf)"
    assert Interval(float, 0, 1, closed="neither").describe() == "a float in the range (0, 1)"
    assert Options({"ae", "vae"}).describe() == "a str among {'ae', 'vae'}"
    assert Options({"auto"}).describe() == "'auto'" and NONE.describe() == "None"


def test_options_compare_types_so_one_is_not_true():
    flags = Options({True, False})
    assert flags.accepts(True) and not flags.accepts(1) and not flags.accepts(0)
    assert not Options({"a"}).accepts(["a"])


class _Owner:
    def __init__(self, **params):
        self.__dict__.update(params)


TABLE = {
    "k": [Interval(int, 2, closed="left"), Options({"auto"}), NONE],
    "mode": [Options({"fast", "slow"})],
    "hook": [Satisfies(callable, "a callable", bad=(3,))],
}


def test_one_message_template_names_owner_parameter_allowed_and_got():
    with pytest.raises(InvalidParameterError) as excinfo:
        validate_params(_Owner(k=1, mode="fast", hook=print), TABLE, name="Thing")
    assert str(excinfo.value) == (
        "The 'k' parameter of Thing must be an int in the range [2, inf), 'auto' or None. "
        "Got 1 instead."
    )
    assert isinstance(excinfo.value, ValueError) and isinstance(excinfo.value, TypeError)
    validate_params(_Owner(k="auto", mode="slow", hook=print), TABLE)  # valid: no error


def test_invalid_values_are_refused_by_every_constraint_of_their_parameter():
    pairs = invalid_values(TABLE)
    assert ("k", 1) in pairs and ("k", 2.5) in pairs and ("hook", 3) in pairs
    assert ("mode", "not-an-option") in pairs
    for name, value in pairs:
        assert not any(c.accepts(value) for c in TABLE[name])


def test_module_instance_needs_no_import_of_the_module():
    rule = module_instance("collections.OrderedDict")
    from collections import OrderedDict

    assert rule.accepts(OrderedDict()) and not rule.accepts({})
    assert not module_instance("not_imported_module_xyz.Thing").accepts(object())


def test_the_stratifier_table_loads_without_torch_or_scikit_learn():
    # the command line checks parameters before the heavy imports
    import subprocess
    import sys

    code = (
        "import sys, stratify._params as p; "
        "assert p.STRATIFIER_CONSTRAINTS; "
        "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
