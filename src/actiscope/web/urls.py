from django.contrib.auth import views as auth
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from actiscope.web import access
from actiscope.web.api.views import healthz, readyz
from actiscope.web.classify import views as classify
from actiscope.web.dashboard import views as dashboard

urlpatterns = [
    path("", classify.classify_page, name="classify"),
    path("live", classify.live_page, name="live"),
    path("history", classify.history_page, name="history"),
    path("predictions/<int:pk>/delete", classify.delete_page, name="delete"),
    path("predictions/<int:pk>/image", classify.prediction_image, name="image"),
    path("predictions/<int:pk>/gradcam", classify.prediction_gradcam, name="gradcam"),
    path("runs", dashboard.runs_page, name="runs"),
    path("runs/<str:name>", dashboard.run_page, name="run"),
    path("runs/<str:name>/activate", dashboard.activate, name="activate"),
    path("runs/<str:name>/gallery", dashboard.gallery_page, name="gallery"),
    path("runs/<str:name>/gallery/<int:index>", dashboard.gallery_image, name="gallery-image"),
    path("runs/<str:name>/files/<path:file>", dashboard.run_file, name="run-file"),
    path("api/v1/", include("actiscope.web.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("login", access.LoginView.as_view(), name="login"),
    path("logout", auth.LogoutView.as_view(), name="logout"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
]
handler500 = "actiscope.web.faults.server_error"  # a database gone or a full disk: one line (faults.py)
