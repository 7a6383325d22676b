import pytest

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
