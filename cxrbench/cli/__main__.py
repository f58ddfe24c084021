"""``python -m cxrbench.cli``: the ``cxrbench`` command."""

import sys

from cxrbench.cli import main

sys.exit(main())
