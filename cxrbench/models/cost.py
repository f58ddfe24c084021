"""Static model cost: parameter counts, multiply-accumulates and weight size, one name per figure.

:func:`cost_fields` is the one set of cost fields every record carries (job records, latency
records, ``cxrbench profile``): ``params``, ``trainable_params``, ``macs``, ``flops``, ``counter``,
``counter_version``, ``counter_backend``, ``convention``, ``weights_bytes_fp32``,
``state_dict_bytes_fp32`` (and ``macs_error`` when counting failed).

MACs come from ptflops with its ``aten`` backend, which counts only conv / matmul / addmm / bmm
(bias included) at the ATen level. ptflops' default backend (``pytorch``) double-counts some
layers, so the backend is always passed explicitly. :func:`count_macs_flopcounter` gives an
independent cross-check through ``torch.utils.flop_counter``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from importlib.metadata import version
from typing import Any

import torch
import torch.nn as nn
from cxrbench.specs import ModelSpec

log = logging.getLogger(__name__)

CONVENTION = "MACs = multiply-accumulates of conv/linear/matmul (bias included); FLOPs = 2 x MACs"


def count_params(model: nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` parameter counts (shared parameters counted once)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def _cpu_eval_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).to("cpu").eval()


def _meta_eval_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy whose tensors live on the meta device (shapes only, no weight data copied)."""
    memo: dict[int, Any] = {}
    for t in model.parameters():
        memo[id(t)] = nn.Parameter(torch.empty_like(t, device="meta"), requires_grad=t.requires_grad)
    for t in model.buffers():
        memo[id(t)] = torch.empty_like(t, device="meta")
    return copy.deepcopy(model, memo).eval()


def count_macs(model: nn.Module, input_size: int | tuple[int, int], in_chans: int) -> dict[str, Any]:
    """MACs of one forward pass on a ``(1, in_chans, H, W)`` input, counted by ptflops (aten backend).

    Counts on an eval-mode copy on the meta device (or on the CPU when an op has no meta kernel),
    so ``model`` is left untouched. The result does not depend on the weights.
    """
    from ptflops import get_model_complexity_info

    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size

    def run(copy_fn: Any) -> tuple[Any, str]:
        log = io.StringIO()  # ptflops prints failures instead of raising
        with torch.no_grad(), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            try:
                macs, _ = get_model_complexity_info(copy_fn(model), (in_chans, h, w), as_strings=False,
                                                    print_per_layer_stat=False, backend="aten", ost=log)
            except Exception as exc:  # noqa: BLE001
                return None, f"{type(exc).__name__}: {exc}"
        return macs, log.getvalue()

    # Shapes are all the count needs: the meta device makes it near-instant. A model with
    # data-dependent ops (no meta kernel) is counted on a real CPU copy instead.
    macs, _ = run(_meta_eval_copy)
    if macs is None:
        macs, message = run(_cpu_eval_copy)
        if macs is None:
            raise RuntimeError(f"ptflops could not count this model: {message.strip()[-500:]}")
    macs = int(macs)
    return {"macs": macs, "flops": 2 * macs, "counter": "ptflops", "counter_version": version("ptflops"),
            "counter_backend": "aten", "convention": CONVENTION}


def count_macs_flopcounter(model: nn.Module, input_size: int | tuple[int, int], in_chans: int) -> int:
    """MACs as ``torch.utils.flop_counter.FlopCounterMode`` total FLOPs / 2 (cross-check)."""
    from torch.utils.flop_counter import FlopCounterMode

    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        _cpu_eval_copy(model)(torch.zeros(1, in_chans, h, w))
    return counter.get_total_flops() // 2


def weight_bytes(model: nn.Module) -> dict[str, int]:
    """Size of the weights stored as fp32: parameters alone, and the whole state dict (with BN buffers)."""
    total, _ = count_params(model)
    state = sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())
    return {"weights_bytes_fp32": 4 * total, "state_dict_bytes_fp32": 4 * state}


def cost_fields(model: nn.Module, input_size: int | tuple[int, int], in_chans: int, *,
                cross_check: bool = False) -> dict[str, Any]:
    """The cost fields of ``model`` (see the module docstring); a MAC counter failure is recorded
    as ``macs_error``, never raised. ``cross_check`` adds ``macs_flopcounter`` and the relative
    difference ``macs_crosscheck_rel_diff`` (one forward pass under ``FlopCounterMode``)."""
    total, trainable = count_params(model)
    out: dict[str, Any] = {"params": total, "trainable_params": trainable, **weight_bytes(model)}
    try:
        out |= count_macs(model, input_size, in_chans)
    except Exception as exc:  # noqa: BLE001 - a counter failure must not lose a trained model or a latency
        log.warning("MAC count failed for %s: %s", type(model).__name__, exc)
        out["macs_error"] = f"{type(exc).__name__}: {exc}"
    if cross_check:
        try:
            fc = count_macs_flopcounter(model, input_size, in_chans)
            out["macs_flopcounter"] = int(fc)
            if out.get("macs"):
                out["macs_crosscheck_rel_diff"] = abs(fc - out["macs"]) / out["macs"]
        except Exception as exc:  # noqa: BLE001
            log.warning("FlopCounterMode cross-check failed: %s", exc)
    return out


def model_cost(spec: ModelSpec, num_classes: int, in_chans: int, input_size: int,
               params: Any = None, task: str = "multiclass") -> dict[str, Any]:
    """:func:`cost_fields` of ``spec`` built (untrained) for these settings, with those settings.

    ``params`` (a dict or the spec's params instance; its schema's defaults when None) is
    validated like a suite's. The model is built on the meta device when the builder allows.
    """
    from cxrbench.models.factory import build_request

    request = build_request(spec, num_classes=num_classes, in_chans=in_chans, task=task, image_size=input_size,
                            params=params)
    try:  # no weight memory or init time needed: build on the meta device when the builder allows
        with torch.device("meta"):
            model = spec.build(request)
    except Exception:  # noqa: BLE001
        model = spec.build(request)
    return {"model": spec.name, "num_classes": num_classes, "in_chans": in_chans, "input_size": input_size,
            **cost_fields(model, input_size, in_chans)}
