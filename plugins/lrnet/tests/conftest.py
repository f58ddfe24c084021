"""Test settings: one intra-op thread (the core's shared fixture)."""

from cxrbench.testing import one_thread  # noqa: F401 - an autouse fixture, active by being imported here
