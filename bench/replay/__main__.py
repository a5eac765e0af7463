import sys

from bench.replay import main

sys.exit(main())
