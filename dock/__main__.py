"""`python -m dock run|status|register|unregister ...` (same as `bodycam dock ...`)."""

import sys

from dock.cli import main

sys.exit(main())
