from django.urls import path

from actiscope.web.api import views

urlpatterns = [
    path("predict", views.PredictView.as_view(), name="api-predict"),
    path("live", views.LiveView.as_view(), name="api-live"),
    path("predictions", views.PredictionList.as_view(), name="api-predictions"),
    path("predictions/<int:pk>", views.PredictionDetail.as_view(), name="api-prediction"),
    path("models", views.ModelList.as_view(), name="api-models"),
    path("runs", views.RunList.as_view(), name="api-runs"),
    path("runs/<str:name>", views.RunDetail.as_view(), name="api-run"),
]
