"""`python -m vera_mobile.cli ...`, the same as `vera-mobile ...`."""

import sys

from . import main

sys.exit(main())
