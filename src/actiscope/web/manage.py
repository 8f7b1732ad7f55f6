"""`python -m actiscope.web.manage <command>`: Django's management commands with actiscope's settings."""

import os
import sys

from actiscope.web.setup import prepare_environment


def main() -> None:
    prepare_environment(os.environ)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
