from django.apps import AppConfig


class ClassifyConfig(AppConfig):
    name = "actiscope.web.classify"
    label = "classify"
    default_auto_field = "django.db.models.BigAutoField"
