from __future__ import annotations

import cachetier


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert list(cachetier.__all__) == sorted(cachetier.__all__, key=lambda name: (not name.isupper(), name))
    for name in cachetier.__all__:
        assert getattr(cachetier, name) is not None, name


def test_public_names_are_exported_from_their_home_module() -> None:
    exported = {name for name in dir(cachetier) if not name.startswith("_")}
    assert {"CacheManager", "CacheConfig", "create_cache", "create_for_testing", "MISS"} <= exported
