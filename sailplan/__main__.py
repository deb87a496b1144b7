import sys

from sailplan.cli import main

sys.exit(main())
