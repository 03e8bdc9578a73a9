"""``python -m fastmm.cli``: the ``fastmm`` command."""

import sys

from fastmm.cli import main

sys.exit(main())
