from __future__ import annotations

import pytest

import securetf.policy
from securetf.errors import PolicyError, UsageError


def test_public_names_are_exactly_all() -> None:
    # Names are handed on lazily: each resolves, and then they are all there is.
    for name in securetf.policy.__all__:
        assert getattr(securetf.policy, name) is not None, name
    public = {
        n
        for n, v in vars(securetf.policy).items()
        if not n.startswith("_") and not isinstance(v, type(securetf.policy))  # submodules
    }
    assert public == set(securetf.policy.__all__)
    assert sorted(securetf.policy.__all__) == sorted(set(securetf.policy.__all__))
    with pytest.raises(AttributeError):
        _ = securetf.policy.not_a_name


def test_policy_error_is_a_usage_error() -> None:
    assert issubclass(PolicyError, UsageError)
    assert issubclass(securetf.policy.GovernanceError, PolicyError)
    assert issubclass(securetf.policy.ThresholdNotMet, securetf.policy.GovernanceError)
