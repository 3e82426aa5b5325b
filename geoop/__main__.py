import sys

from geoop.cli import main

sys.exit(main())
