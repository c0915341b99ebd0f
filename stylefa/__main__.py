import sys

from stylefa.cli import main

sys.exit(main())
