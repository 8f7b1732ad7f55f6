"""What the web app stores: every prediction (with its upload under a generated name) and which model
is active."""

from __future__ import annotations

from pathlib import Path

from django.db import models


class Prediction(models.Model):
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    image = models.CharField(max_length=200)  # generated file name under MEDIA_ROOT; never the user's
    original_name = models.CharField(max_length=255, blank=True)  # only ever displayed, escaped
    model_name = models.CharField(max_length=200, db_index=True)
    model_version = models.CharField(max_length=100, blank=True)
    # the package directory of the model that made it, so that it is explained by that model; "" before 0003
    model_path = models.CharField(max_length=1000, blank=True, default="")
    label = models.CharField(max_length=200, db_index=True)
    confidence = models.FloatField()
    top_k = models.JSONField()  # [[label, probability], ...] best first
    latency_ms = models.FloatField()
    timeline = models.JSONField(null=True, blank=True)  # clips: [[start s, end s, label, probability], ...]
    # what the model was given when it differs from what it was trained on (a model trained on person
    # crops given a whole upload); "" when it got what it expects, and before 0004
    input_note = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.label} ({self.confidence:.2f})"

    @property
    def is_clip(self) -> bool:
        from actiscope.data.video import is_video_path

        return is_video_path(Path(self.image))


class ActiveModel(models.Model):
    """One row: the model package the app serves, chosen on the runs dashboard."""

    path = models.CharField(max_length=1000)
    changed = models.DateTimeField(auto_now=True)
