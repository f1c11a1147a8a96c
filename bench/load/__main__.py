"""``python -m bench.load``: see :mod:`bench.load`."""

import sys

from bench.load.run import main

if __name__ == '__main__':
    sys.exit(main())
