import sys

from journey_engine.cli import main

sys.exit(main())
