"""`python -m rnnkit ...` (and `torchrun -m rnnkit train ...`) run the CLI."""
import sys

from .cli import main

sys.exit(main())
