"""Benchmarks run only with `make bench` (pytest-benchmark enabled); they are skipped in `make test`."""

import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_flush_denormal(True)
