"""``python -m acquisition_bridge`` is ``lorentz-bridge``."""

import sys

from acquisition_bridge.cli import main

sys.exit(main())
