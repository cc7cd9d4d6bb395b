"""python -m rssm -> the rssm command line."""

import sys

from rssm.cli import main

sys.exit(main())
