"""`python -m reports DIR...`."""
from reports.cli import main

raise SystemExit(main())
