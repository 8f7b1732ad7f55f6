"""Every request and response of the API as a typed serializer, so that the OpenAPI schema at /api/schema/
describes each one (tests/web/test_api.py walks it for free-form objects)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from actiscope.web.classify.models import Prediction


class TopKSerializer(serializers.Serializer):
    label = serializers.CharField()  # type: ignore[assignment]  # an API field named like a Serializer attribute: DRF allows it, the stubs do not
    probability = serializers.FloatField()


class WindowSerializer(serializers.Serializer):
    start = serializers.FloatField(help_text="seconds into the clip")
    end = serializers.FloatField()
    label = serializers.CharField()  # type: ignore[assignment]  # an API field named like a Serializer attribute: DRF allows it, the stubs do not
    probability = serializers.FloatField()


class PredictionSerializer(serializers.ModelSerializer):
    top_k = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()
    kind = serializers.SerializerMethodField()
    timeline = serializers.SerializerMethodField()

    class Meta:
        model = Prediction
        fields = [
            "id",
            "created",
            "original_name",
            "kind",
            "label",
            "confidence",
            "top_k",
            "timeline",
            "model_name",
            "model_version",
            "latency_ms",
            "input_note",
            "image_url",
        ]

    @extend_schema_field(TopKSerializer(many=True))
    def get_top_k(self, row: Prediction) -> list[dict[str, float | str]]:
        return [{"label": label, "probability": p} for label, p in row.top_k]

    def get_image_url(self, row: Prediction) -> str:
        return f"/predictions/{row.pk}/image"

    @extend_schema_field(serializers.ChoiceField(choices=["image", "clip"]))
    def get_kind(self, row: Prediction) -> str:
        return "clip" if row.is_clip else "image"

    @extend_schema_field(WindowSerializer(many=True, allow_null=True))
    def get_timeline(self, row: Prediction) -> list[dict[str, float | str]] | None:
        """Clips: one prediction per sliding window (2 s, 1 s apart)."""
        if not row.timeline:
            return None
        return [{"start": a, "end": b, "label": label, "probability": p} for a, b, label, p in row.timeline]


class PredictRequestSerializer(serializers.Serializer):
    file = serializers.ListField(
        # an empty or undecodable file gets the service's own one-line message, naming the file
        child=serializers.FileField(allow_empty_file=True),
        help_text="one or more images, or clips for a video model (repeat the field)",
    )
    top_k = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=100,
        default=5,
        error_messages={
            "invalid": "must be a whole number",
            "min_value": "must be between 1 and 100",
            "max_value": "must be between 1 and 100",
        },
    )


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()


class ModelEntrySerializer(serializers.Serializer):
    run = serializers.CharField()
    architecture = serializers.CharField()
    path = serializers.CharField(help_text="the model package directory")
    test_accuracy = serializers.FloatField(allow_null=True)
    active = serializers.BooleanField()


class ModelListSerializer(serializers.Serializer):
    active = serializers.CharField(allow_null=True, help_text="the path of the model the app serves")
    models = ModelEntrySerializer(many=True)


class RunSummarySerializer(serializers.Serializer):
    name = serializers.CharField()
    path = serializers.CharField()
    architecture = serializers.CharField()
    has_model = serializers.BooleanField()
    status = serializers.ChoiceField(choices=["finished", "training", "started"])
    test_accuracy = serializers.FloatField(allow_null=True)
    test_macro_f1 = serializers.FloatField(allow_null=True)
    epochs = serializers.IntegerField(allow_null=True)
    modified = serializers.FloatField(
        help_text="last write to its history or package, seconds since the epoch"
    )
    has_eval = serializers.BooleanField()
    starting_weights = serializers.CharField()


class RunListSerializer(serializers.Serializer):
    runs = RunSummarySerializer(many=True)


# -- metrics.json, as `actiscope evaluate` writes it (evaluate/report.py, evaluate/metrics.py) ------------
# These describe the document for the schema only: MetricsField passes it on whole, so that a key added
# to the evaluation reaches clients before it is described here (a test compares the two).
class AveragesSerializer(serializers.Serializer):
    macro = serializers.FloatField(allow_null=True)
    micro = serializers.FloatField(allow_null=True)
    weighted = serializers.FloatField(allow_null=True)


class OneVsRestSerializer(serializers.Serializer):
    micro = serializers.FloatField(allow_null=True)
    macro = serializers.FloatField(allow_null=True)


class EvaluatedModelSerializer(serializers.Serializer):
    architecture = serializers.CharField()
    package = serializers.CharField()
    image_size = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["image", "video"])
    frames = serializers.IntegerField(allow_null=True)
    weights = serializers.DictField(child=serializers.CharField(), help_text="name, source, sha256, file")
    person_crop = serializers.FloatField(
        allow_null=True, help_text="the margin of the person crops it was trained on; null: whole images"
    )
    members = serializers.ListField(
        child=serializers.CharField(), help_text="an ensemble's member architectures; [] for one model"
    )


class PersonBoxesSerializer(serializers.Serializer):
    cropped = serializers.IntegerField(help_text="images given as their person crop (a box in the data)")
    whole = serializers.IntegerField(
        help_text="images of a model trained on person crops given whole, for want of a box"
    )


class UnreadableFileSerializer(serializers.Serializer):
    path = serializers.CharField()
    error = serializers.CharField()


# "class" is a Python keyword, so this one is built from a dict of its fields.
ClassMetricsSerializer = type(
    "ClassMetricsSerializer",
    (serializers.Serializer,),
    {
        "class": serializers.CharField(),
        "precision": serializers.FloatField(allow_null=True),
        "recall": serializers.FloatField(allow_null=True),
        "f1": serializers.FloatField(allow_null=True),
        "support": serializers.IntegerField(),
        "predicted": serializers.IntegerField(),
        "roc_auc": serializers.FloatField(allow_null=True),
        "average_precision": serializers.FloatField(allow_null=True),
    },
)


class MetricsSerializer(serializers.Serializer):
    model = EvaluatedModelSerializer()
    data = serializers.CharField(help_text="what was evaluated: the dataset and split")  # type: ignore[assignment]  # an API field named like a Serializer attribute: DRF allows it, the stubs do not
    split = serializers.CharField()
    backend = serializers.CharField()
    tta = serializers.BooleanField()
    unreadable = serializers.IntegerField()
    unreadable_files = UnreadableFileSerializer(many=True)
    person_boxes = PersonBoxesSerializer()
    images = serializers.IntegerField()
    accuracy = serializers.FloatField()
    balanced_accuracy = serializers.FloatField(allow_null=True)
    top_k_accuracy = serializers.DictField(child=serializers.FloatField(), help_text="k -> accuracy")
    precision = AveragesSerializer()
    recall = AveragesSerializer()
    f1 = AveragesSerializer()
    cohen_kappa = serializers.FloatField(allow_null=True)
    log_loss = serializers.FloatField(allow_null=True)
    expected_calibration_error = serializers.FloatField(allow_null=True)
    roc_auc = OneVsRestSerializer()
    average_precision = OneVsRestSerializer()
    per_class = ClassMetricsSerializer(many=True)
    confusion_matrix = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))
    undefined = serializers.ListField(child=serializers.CharField(), help_text="why a value above is null")


@extend_schema_field(MetricsSerializer(allow_null=True))
class MetricsField(serializers.Field):
    """metrics.json passed on as it is (None before an evaluation)."""

    def to_representation(self, value: Any) -> Any:
        return value


class RunDetailSerializer(RunSummarySerializer):
    metrics = MetricsField(allow_null=True, help_text="the run's evaluation (eval/metrics.json), if any")


class LiveFrameSerializer(serializers.Serializer):
    frame = serializers.FileField(allow_empty_file=True, help_text="one camera frame (JPEG or PNG)")
    save = serializers.BooleanField(default=False, help_text="keep this frame and its prediction in History")  # type: ignore[assignment]  # an API field named like a Serializer attribute: DRF allows it, the stubs do not
    session = serializers.CharField(
        required=False,
        default="",
        max_length=64,
        help_text="the browser's id, for a video model's sliding window of frames (8-64 letters, digits, -)",
    )


class LiveWindowSerializer(serializers.Serializer):
    have = serializers.IntegerField(help_text="frames in this session's window")
    need = serializers.IntegerField(help_text="frames the video model takes: the answer comes once full")


class LiveAnswerSerializer(serializers.Serializer):
    top = TopKSerializer(many=True, allow_null=True, help_text="null while a video model's window fills")
    latency_ms = serializers.FloatField(help_text="the model's time on the server")
    saved = serializers.IntegerField(allow_null=True, help_text="the History entry, when the frame was saved")
    window = LiveWindowSerializer(
        allow_null=True, help_text="a video model's window; null for an image model"
    )
    note = serializers.CharField(
        allow_blank=True,
        help_text="set when the model was trained on person crops: no box is known for a frame, so the "
        "whole frame was used",
    )
