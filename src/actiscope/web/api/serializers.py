from __future__ import annotations

from rest_framework import serializers

from actiscope.web.classify.models import Prediction


class PredictionSerializer(serializers.ModelSerializer):
    top_k = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()
    kind = serializers.SerializerMethodField()
    timeline = serializers.SerializerMethodField()

    class Meta:
        model = Prediction
        fields = ["id", "created", "original_name", "kind", "label", "confidence", "top_k", "timeline",
                  "model_name", "model_version", "latency_ms", "image_url"]  # fmt: skip

    def get_top_k(self, row: Prediction) -> list[dict[str, float | str]]:
        return [{"label": label, "probability": p} for label, p in row.top_k]

    def get_image_url(self, row: Prediction) -> str:
        return f"/predictions/{row.pk}/image"

    def get_kind(self, row: Prediction) -> str:
        return "clip" if row.is_clip else "image"

    def get_timeline(self, row: Prediction) -> list[dict[str, float | str]] | None:
        """Clips: one prediction per sliding window (2 s, 1 s apart)."""
        if not row.timeline:
            return None
        return [{"start": a, "end": b, "label": label, "probability": p} for a, b, label, p in row.timeline]


class PredictRequestSerializer(serializers.Serializer):
    file = serializers.ListField(
        child=serializers.FileField(),
        help_text="one or more images, or clips for a video model (repeat the field)",
    )
    top_k = serializers.IntegerField(required=False, min_value=1, max_value=100, default=5)


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
