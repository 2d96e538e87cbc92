"""`python -m modelconfig.cli`: the same as running modelconfigctl."""

import sys

from .main import main

sys.exit(main())
