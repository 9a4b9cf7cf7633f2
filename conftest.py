"""Hypothesis profiles for every property test: ``ci`` (default) keeps runs short and bounded,
``fuzz`` is the campaign's (``HYPOTHESIS_PROFILE=fuzz FUZZ_COUNT=100000``; see tests/fuzz.py)."""

import os

from hypothesis import settings

settings.register_profile("ci", max_examples=200, deadline=None)
# No example database: a campaign's hundreds of thousands of inputs would only bloat .hypothesis/.
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_COUNT", 100_000)), deadline=None,
                          database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
