"""WSGI entry point for gunicorn: `actiscope.web.wsgi:application`."""

import os

from django.core.wsgi import get_wsgi_application

from actiscope.web.setup import prepare_environment

prepare_environment(
    os.environ
)  # the process's edge: `actiscope serve` has done it already, plain gunicorn not
application = get_wsgi_application()
