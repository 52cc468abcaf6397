"""``ssl_zoo.utils.registry.Registry``: registration, lookup, and the errors a config typo gets."""
import pytest

from ssl_zoo.utils.registry import Registry


def test_register_as_decorator_and_call_and_lookup():
    reg = Registry("THING")

    @reg.register()
    def alpha():
        return "a"

    def beta():
        return "b"

    assert reg.register(beta, name="b") is beta  # direct call returns the object
    assert reg.get("alpha") is alpha and reg.get("b") is beta
    assert "alpha" in reg and "beta" not in reg
    assert reg.names() == ["alpha", "b"] and dict(reg) == {"alpha": alpha, "b": beta}
    assert "THING" in repr(reg) and "alpha" in repr(reg)


def test_duplicate_name_is_an_error():
    reg = Registry("THING")
    reg.register(lambda: 1, name="x")
    with pytest.raises(KeyError, match="already registered in the 'THING' registry"):
        reg.register(lambda: 2, name="x")
    assert reg.get("x")() == 1  # the first registration is kept


def test_unknown_name_suggests_the_closest_and_lists_known_ones():
    reg = Registry("OPTIMIZER")
    for name in ("LARS", "SGD", "AdamW"):
        reg.register(object(), name=name)
    with pytest.raises(KeyError) as e:
        reg.get("LAR")
    msg = str(e.value)
    assert "'LAR'" in msg and "Did you mean 'LARS'?" in msg and "AdamW, LARS, SGD" in msg
    with pytest.raises(KeyError, match=r"Known names: \(none\)"):
        Registry("EMPTY").get("anything")
    with pytest.raises(KeyError) as e:
        reg.get("zzzzzz")
    assert "Did you mean" not in str(e.value)  # nothing close: no misleading hint
