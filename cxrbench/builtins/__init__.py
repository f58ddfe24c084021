"""The core's own plugins: built-in models, datasets and metrics."""
