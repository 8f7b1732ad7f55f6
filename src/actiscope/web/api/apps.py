from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "actiscope.web.api"
    label = "api"
