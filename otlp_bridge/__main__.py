import sys

from otlp_bridge.cli import main

sys.exit(main())
