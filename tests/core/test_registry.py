import pytest

from vidrl import Registry, RegistryError


def test_register_get_owner_and_order():
    reg: Registry[int] = Registry("reward")
    reg.register("b", 2, plugin="p1")
    reg.register("a", 1, plugin="p2")
    assert reg.get("a") == 1 and reg.get("b") == 2
    assert reg.owner("a") == "p2"
    assert reg.names() == ["b", "a"]  # registration order, not alphabetical
    assert "a" in reg and "z" not in reg and len(reg) == 2


def test_duplicate_names_both_plugins():
    reg: Registry[int] = Registry("advantage")
    reg.register("grpo", 1, plugin="first_plugin")
    with pytest.raises(RegistryError) as e:
        reg.register("grpo", 2, plugin="second_plugin")
    msg = str(e.value)
    assert "'grpo'" in msg and "first_plugin" in msg and "second_plugin" in msg
    assert reg.get("grpo") == 1  # the first registration is kept intact


def test_unknown_name_lists_valid_and_suggests():
    reg: Registry[int] = Registry("advantage")
    for n in ("grpo", "rloo", "dr_grpo"):
        reg.register(n, 0, plugin="p")
    with pytest.raises(RegistryError) as e:
        reg.get("gpro")
    msg = str(e.value)
    assert "unknown advantage 'gpro'" in msg
    assert "dr_grpo, grpo, rloo" in msg
    assert "did you mean 'grpo'?" in msg


def test_unknown_name_in_empty_registry():
    with pytest.raises(RegistryError, match="nothing is registered"):
        Registry("tool").get("zoom")


@pytest.mark.parametrize("bad", ["", None, 3])
def test_invalid_names_rejected(bad):
    with pytest.raises(RegistryError, match="non-empty str"):
        Registry("tool").register(bad, 0, plugin="p")
