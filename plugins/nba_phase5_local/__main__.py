import sys

from nba_phase5_local.cli import main

# Airflow's plugin manager imports every module under plugins/: only run when executed.
if __name__ == "__main__":
    sys.exit(main())
