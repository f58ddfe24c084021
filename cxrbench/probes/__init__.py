"""Shortcut probes of a finished run (``cxrbench probe RUN``).

- :mod:`cxrbench.probes.masking`: re-evaluate each trained model with the lung fields hidden (and
  with only them shown); a model that keeps most of its skill without the lungs is flagged.
- :mod:`cxrbench.probes.source`: can a simple classifier tell the images' source apart from pixels?
- :mod:`cxrbench.probes.run`: both probes on a run folder, written to ``<run>/probes.json``.
"""

from cxrbench.results.store import PROBES_FILE

__all__ = ["PROBES_FILE"]
