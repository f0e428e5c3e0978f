"""Model operations' endpoints under /api/v1/admin/: list model versions, promote the challenger."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from modelops.selectors import model_versions
from modelops.serializers import ModelPromotionSerializer, ModelVersionSerializer, PromotionRequestSerializer
from modelops.services import promote_model_version
from triage.api import api_error


class CanManageModelVersions(BasePermission):
    """DRF: reading model versions needs `registry.view_modelversion`, activating `registry.change_modelversion`
    (superusers have both; grant them to other admins in Django admin)."""

    def has_permission(self, request, view):
        needed = "registry.view_modelversion" if request.method in SAFE_METHODS else "registry.change_modelversion"
        return request.user.is_authenticated and request.user.has_perm(needed)


class ModelVersionListView(generics.ListAPIView):
    """Installed model versions, newest first: one active, at most one challenger (shadow), the rest retired."""

    serializer_class = ModelVersionSerializer
    permission_classes = [CanManageModelVersions]

    def get_queryset(self):
        return model_versions()


class ModelVersionPromoteView(APIView):
    """Promote the challenger to active, as the admin action does: a reason is required, and the
    promotion is refused (400, audited) without enough evidence that it flags no fewer mpox cases."""

    permission_classes = [CanManageModelVersions]

    @extend_schema(request=PromotionRequestSerializer, responses={201: ModelPromotionSerializer})
    def post(self, request, model_version_id):
        model_version = get_object_or_404(model_versions(), pk=model_version_id)
        body = PromotionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            promotion = promote_model_version(
                model_version=model_version,
                promoted_by=request.user,
                reason=body.validated_data["reason"],
                request=request,
            )
        except DjangoValidationError as error:
            raise api_error(error)
        return Response(ModelPromotionSerializer(promotion).data, status=status.HTTP_201_CREATED)
