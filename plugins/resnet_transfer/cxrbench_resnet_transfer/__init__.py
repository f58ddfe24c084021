"""cxrbench plugin: torchvision ResNet transfer-learning registrations (Feng, Wu & Li; ResNet-18 course report)."""
