"""cxrbench plugin: TorchXRayVision's chest X-ray pretrained classifiers (Cohen et al.)."""
