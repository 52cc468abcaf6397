"""Entry-point plugins of ``Registry``: a third-party package's objects registered on first lookup."""
import sys
import textwrap

import pytest

from ssl_zoo.modeling.method import METHOD_REGISTRY
from ssl_zoo.utils.registry import Registry


def _fake_distribution(root, group, entries, modules):
    """A minimal installed distribution (dist-info with entry_points.txt) plus its modules, under ``root``."""
    info = root / "fake_plugin_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-plugin-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))
    for name, body in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(body))


def test_plugins_load_lazily_on_first_lookup(tmp_path, monkeypatch):
    registry = Registry("TOY", entry_point_group="ssl_zoo_test.toy_plugins")
    sys.modules["_toy_registry_holder"] = type(sys)("_toy_registry_holder")
    sys.modules["_toy_registry_holder"].REGISTRY = registry
    _fake_distribution(tmp_path, "ssl_zoo_test.toy_plugins", {"mine": "toy_plugin_mod"}, {"toy_plugin_mod": """
        from _toy_registry_holder import REGISTRY
        @REGISTRY.register()
        class MyMethod:
            pass
    """})
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert "toy_plugin_mod" not in sys.modules  # nothing imported before the registry is read
        assert registry.get("MyMethod").__name__ == "MyMethod"
        assert registry.names() == ["MyMethod"] and "MyMethod" in registry
    finally:
        sys.modules.pop("toy_plugin_mod", None)
        sys.modules.pop("_toy_registry_holder", None)


def test_a_broken_plugin_is_named(tmp_path, monkeypatch):
    registry = Registry("TOY", entry_point_group="ssl_zoo_test.broken_plugins")
    _fake_distribution(tmp_path, "ssl_zoo_test.broken_plugins", {"bad": "broken_plugin_mod"},
                       {"broken_plugin_mod": "raise RuntimeError('boom')\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="entry point 'bad = broken_plugin_mod' of group 'ssl_zoo_test.broken_plugins' "
                                          r"\(package fake-plugin-pkg\) failed to import: RuntimeError: boom"):
        registry.get("anything")


def test_builtin_methods_come_through_the_entry_point_group():
    import importlib.metadata

    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="ssl_zoo.methods")}
    assert eps.get("builtin") == "ssl_zoo_methods", "reinstall: pip install -e . (entry points live in the metadata)"
    assert {"BYOL", "SimCLR", "MoCo", "SimSiam", "BarlowTwins"} <= set(METHOD_REGISTRY.names())
