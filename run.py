"""Scoreboard: `python run.py` serves on 127.0.0.1:8080 with SQLite in ./data/.

See `python run.py --help` for the token, proof and verify commands.
"""

import sys

from scoreboard.cli import main

if __name__ == "__main__":
    sys.exit(main())
