"""``python -m tunesmith.cli``: the command line (distributed training starts its workers this way)."""

import sys

from tunesmith.cli import main

sys.exit(main())
