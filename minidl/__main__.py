"""``python -m minidl``: see ``minidl.cli``."""
import sys

from .cli import main

sys.exit(main())
