"""`python -m scoreboard`: the same command line as the `scoreboard` script and run.py."""

import sys

from scoreboard.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m scoreboard"))
