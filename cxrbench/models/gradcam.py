"""Grad-CAM heatmaps of a model's layer (the optional ``grad-cam`` package)."""

from __future__ import annotations

import numpy as np
import torch

INSTALL_HINT = "pip install 'cxrbench[report]' (or: pip install grad-cam)"


def gradcam_missing() -> str | None:
    """``None`` when Grad-CAM can run, else a message saying how to install it."""
    try:
        import pytorch_grad_cam  # noqa: F401
    except ImportError:
        return f"Grad-CAM needs the grad-cam package, which is not installed: {INSTALL_HINT}"
    return None


def grad_cam(model: torch.nn.Module, layer: str, x: torch.Tensor,
             targets: list[int] | None = None) -> tuple[np.ndarray, tuple[int, ...]]:
    """Grad-CAM maps ``(N, H, W)`` in [0, 1] of ``layer`` (dotted path), and that layer's output shape.

    ``targets`` None explains each image's top class, else class ``targets[i]`` for image ``i``. A
    feature map of 1 x 1 (a deep layer at a small input size) can only give a uniform heatmap.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    module = model.get_submodule(layer)
    shapes: list[tuple[int, ...]] = []
    hook = module.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape[1:])))
    cam_targets = None if targets is None else [ClassifierOutputTarget(int(t)) for t in targets]
    try:
        with GradCAM(model=model, target_layers=[module]) as cam:
            maps = np.asarray(cam(input_tensor=x, targets=cam_targets), dtype=np.float32)
    finally:
        hook.remove()
    return maps, shapes[0] if shapes else ()


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 ``(C, H, W)`` image with a ``(H, W)`` heatmap blended over it: uint8 ``(H, W, 3)``."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = np.asarray(image, dtype=np.float32) / 255.0
    rgb = np.repeat(rgb, 3, axis=0) if rgb.shape[0] == 1 else rgb
    return show_cam_on_image(rgb.transpose(1, 2, 0), mask, use_rgb=True, image_weight=0.6)
