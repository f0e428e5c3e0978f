from rest_framework import serializers

from registry.models import ModelPromotion, ModelVersion


class ModelVersionSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=ModelVersion.Status.choices, read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "version",
            "architecture",
            "threshold",
            "operating_point",
            "status",
            "is_active",
            "is_challenger",
            "installed_at",
        ]


class PromotionRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, help_text="Why this model is promoted (kept with the promotion).")


class ModelPromotionSerializer(serializers.ModelSerializer):
    model_version = ModelVersionSerializer()
    replaced = serializers.CharField(source="replaced.version", allow_null=True, default=None)
    promoted_by = serializers.CharField(source="promoted_by.get_username")

    class Meta:
        model = ModelPromotion
        fields = ["id", "model_version", "replaced", "promoted_by", "reason", "created_at"]
