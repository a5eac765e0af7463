import sys

from bench.topn import main

sys.exit(main())
