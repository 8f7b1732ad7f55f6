from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "actiscope.web.dashboard"
    label = "dashboard"
