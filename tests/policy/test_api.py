from __future__ import annotations

import securetf.policy
from securetf.errors import PolicyError, UsageError


def test_public_names_are_exactly_all() -> None:
    public = {n for n in vars(securetf.policy) if not n.startswith("_")}
    modules = {"limits"}  # submodules appear as attributes once imported
    assert public - modules == set(securetf.policy.__all__)
    assert sorted(securetf.policy.__all__) == sorted(set(securetf.policy.__all__))


def test_policy_error_is_a_usage_error() -> None:
    assert issubclass(PolicyError, UsageError)
    assert issubclass(securetf.policy.GovernanceError, PolicyError)
    assert issubclass(securetf.policy.ThresholdNotMet, securetf.policy.GovernanceError)
