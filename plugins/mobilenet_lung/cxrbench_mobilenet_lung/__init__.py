"""cxrbench plugin: MobileNet-FT and MobileNet-Lung (MobileNetV2 + squeeze-and-excitation)."""
