"""`python -m gateway.trunk.agent --config FILE`: the agent's entry point, as the daemon starts it."""

import sys

from gateway.trunk.agent.main import main

if __name__ == "__main__":
    sys.exit(main())
