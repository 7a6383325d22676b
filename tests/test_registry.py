import pytest

from nas_lib.blocks.base import BlockFamily, BlockRegistry
from nas_lib.registry import Registry


def test_register_get_and_names():
    reg: Registry[type] = Registry("widget")

    @reg.register("b")
    class B: ...

    reg.add("a", int)
    assert reg.get("b") is B
    assert reg.names() == ["a", "b"]
    assert "a" in reg and "z" not in reg
    assert len(reg) == 2


def test_duplicate_name_raises():
    reg: Registry[int] = Registry("widget")
    reg.add("x", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("x", 2)


def test_unknown_name_lists_known_ones():
    reg: Registry[int] = Registry("widget")
    reg.add("alpha", 1)
    reg.add("beta", 2)
    with pytest.raises(KeyError, match="unknown widget 'gamma'; known: alpha, beta"):
        reg.get("gamma")


@pytest.mark.parametrize("bad", ["", " padded "])
def test_invalid_names_rejected(bad):
    with pytest.raises(ValueError):
        Registry("widget").add(bad, 1)


def _family(name: str, digit: int) -> BlockFamily:
    return BlockFamily(name=name, digit=digit, fields=(("width", (1, 2)),), make=lambda c, hw, p: None)


def test_block_digits_are_declared_not_taken_from_import_order():
    reg = BlockRegistry()
    reg.add("late", _family("late", 3))
    reg.add("early", _family("early", 1))
    assert reg.names_by_digit() == ("early", "late") and reg.digits() == (1, 3) and reg.max_digit() == 3
    assert reg.by_digit(3).name == "late"
    with pytest.raises(KeyError, match="no block family has code digit 2; in use: 1 early, 3 late"):
        reg.by_digit(2)


def test_block_registry_refuses_a_taken_digit_and_bad_declarations():
    reg = BlockRegistry()
    reg.add("cnn", _family("cnn", 1))
    with pytest.raises(ValueError, match="code digit 1 is already taken by 'cnn'"):
        reg.add("other", _family("other", 1))
    assert "other" not in reg  # a refused family leaves no trace
    with pytest.raises(ValueError, match="integer >= 1"):
        reg.add("zero", _family("zero", 0))
    with pytest.raises(ValueError, match="cannot be registered under the name 'alias'"):
        reg.add("alias", _family("cnn2", 2))


def test_in_order_keeps_registration_order():
    reg: Registry[int] = Registry("widget")
    for name in ("zeta", "alpha", "mid"):
        reg.add(name, 0)
    assert reg.in_order() == ("zeta", "alpha", "mid") and reg.names() == ["alpha", "mid", "zeta"]
