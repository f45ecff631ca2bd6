"""`python -m daemon` is the same as `traum`."""

import sys

from daemon.cli import main

sys.exit(main())
