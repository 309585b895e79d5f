"""Emulated TEE hardware for tests and demos: test PKIs, evidence in the real byte layouts,
devices behind the real producer interfaces, and local collateral services.

Nothing here is trusted by default: a policy must name ``test-roots`` for evidence chained
to these roots to count, and every use is logged loudly.
"""
