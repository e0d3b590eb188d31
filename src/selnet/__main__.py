import sys

from selnet.cli import main

sys.exit(main())
