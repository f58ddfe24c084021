"""Test settings: one intra-op thread (the core's shared fixture), no hub access."""

import os

from cxrbench.testing import one_thread  # noqa: F401 - an autouse fixture, active by being imported here

os.environ.setdefault("HF_HUB_OFFLINE", "1")
