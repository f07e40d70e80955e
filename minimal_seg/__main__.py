"""``python -m minimal_seg ...``: see ``minimal_seg.cli``."""
import sys

from .cli import main

sys.exit(main())
