import sys

from bench.totara import main

sys.exit(main())
