"""`python -m actiscope.cli`, the same as the `actiscope` console script."""

import sys

from actiscope.cli import main

sys.exit(main())
