import sys

from atsep.cli import main

sys.exit(main())
