import sys

from nba_phase5.cli import main

sys.exit(main())
