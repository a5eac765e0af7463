"""`python -m cli ...` is the `adaptrec` command."""
import sys

from cli.main import main

sys.exit(main())
