import os
import sys

from bench.peers.suite import main

os.environ.setdefault("PYTHONUNBUFFERED", "1")
sys.exit(main())
