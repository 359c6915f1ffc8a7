import sys

from emoca_edge.cli import main

sys.exit(main())
