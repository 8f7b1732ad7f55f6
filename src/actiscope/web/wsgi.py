"""WSGI entry point for gunicorn: `actiscope.web.wsgi:application`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "actiscope.web.settings")
application = get_wsgi_application()
