"""Triage's REST API (under /api/v1/): the same services, selectors and permission rules as the pages.

Case-scoped endpoints (`CasePhotosView`, `CaseOutcomeView`) are bases: the portal's integration and
patient APIs subclass them and say whose case it is (`get_case`), so triage never needs to know about
clinics, API keys or booking references. Staff endpoints are complete here; the model-version
endpoints are model operations' (`modelops.api`).
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response
from rest_framework.views import APIView

from core.access import deny
from core.services import audit
from core.throttling import ClientAddressScopedRateThrottle
from triage.permissions import CanReview, IsClinician, ReadsAsReviewerWritesAsClinician, staff_site_ids
from triage.selectors import QUEUE_STATUSES, case_for_review, case_queue, ground_truth_history
from triage.serializers import (
    CaseOutcomeSerializer,
    DecisionSerializer,
    GroundTruthRequestSerializer,
    GroundTruthSerializer,
    PhotoStatusSerializer,
    PhotoUploadSerializer,
    StaffCaseDetailSerializer,
    StaffCaseSerializer,
)
from triage.services import accept_photos, record_decision, record_ground_truth


def api_error(error: DjangoValidationError, field="non_field_errors"):
    """A service's plain-language refusal as a 400 with the same messages."""
    return ValidationError({field: error.messages})


class UploadRateThrottle(ClientAddressScopedRateThrottle):
    """Limits uploads (the `uploads` rate in REST_FRAMEWORK settings) per user; reads are not counted."""

    def allow_request(self, request, view):
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)


class CaseScopedMixin:
    """For endpoints about one case. Subclasses return the case the requester may use, or refuse through
    `core.access.deny`."""

    def get_case(self):
        raise NotImplementedError

    def case(self):
        if not hasattr(self, "_case"):
            self._case = self.get_case()
        return self._case


class CasePhotosView(CaseScopedMixin, generics.ListAPIView):
    """GET: the case's photos and their status (never a score). POST: upload one photo."""

    serializer_class = PhotoStatusSerializer
    throttle_classes = [UploadRateThrottle]
    throttle_scope = "uploads"
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return self.case().photos.order_by("created_at", "pk")

    @extend_schema(request=PhotoUploadSerializer, responses={201: PhotoStatusSerializer})
    def post(self, request, *args, **kwargs):
        case = self.case()
        upload = PhotoUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        try:
            (photo,) = accept_photos(
                case=case,
                uploaded_by=request.user,
                uploaded_files=[data["photo"]],
                body_site=data["body_site"],
                roi=data["roi"],
                tap=data["tap"],
            )
        except DjangoValidationError as error:  # a mark outside the photo, or both kinds: the request as a whole
            raise api_error(error, "non_field_errors" if getattr(error, "code", None) == "roi" else "photo")
        return Response(PhotoStatusSerializer(photo).data, status=status.HTTP_201_CREATED)


class CaseOutcomeView(CaseScopedMixin, generics.RetrieveAPIView):
    """The case's flag, outcome and latest decision."""

    serializer_class = CaseOutcomeSerializer

    def get_object(self):
        return self.case()


QUEUE_PARAMETER = OpenApiParameter(
    "show",
    OpenApiTypes.STR,
    enum=list(QUEUE_STATUSES),
    default="all",
    description=(
        "flagged: flagged and undecided (what the staff badge counts); undecided: no decision yet; decided; "
        "retake: a new photo was requested; all (default)."
    ),
)


@extend_schema(parameters=[QUEUE_PARAMETER])
class StaffCaseQueueView(generics.ListAPIView):
    """The queue at the user's sites (every site for auditors), in the staff page's order (see `selectors.case_queue`)."""

    serializer_class = StaffCaseSerializer
    permission_classes = [CanReview]

    def get_queryset(self):
        queue_filter = self.request.query_params.get("show", "all")
        if queue_filter not in QUEUE_STATUSES:
            raise ValidationError({"show": [f"Choose one of: {', '.join(QUEUE_STATUSES)}."]})
        return case_queue(site_ids=staff_site_ids(self.request.user), status=queue_filter)


def staff_case(request, case_id):
    """The case if it is at one of the user's sites; otherwise an audited 404 (never a hint that it exists)."""
    case = case_for_review(case_id, site_ids=staff_site_ids(request.user))
    if case is None:
        deny(request, action="view_case", asked_for=f"case {case_id}", rule="staff_site", via="api")
    return case


class StaffCaseView(generics.RetrieveAPIView):
    """One case with photos, every analysis (scores included) and decisions. Audited like the case page."""

    serializer_class = StaffCaseDetailSerializer
    permission_classes = [CanReview]

    def get_object(self):
        case = staff_case(self.request, self.kwargs["case_id"])
        audit(actor=self.request.user, action="view_case", obj=case, request=self.request, via="api")
        return case


class StaffDecisionView(APIView):
    """Record a clinician's decision on a case."""

    permission_classes = [IsClinician]

    @extend_schema(request=DecisionSerializer, responses={201: DecisionSerializer})
    def post(self, request, case_id):
        case = staff_case(request, case_id)
        serializer = DecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            decision = record_decision(case=case, clinician=request.user, **serializer.validated_data)
        except DjangoValidationError as error:  # an inconsistent outcome + action, a claim, a cancelled visit
            raise ValidationError(
                error.message_dict if hasattr(error, "error_dict") else {"non_field_errors": error.messages}
            )
        return Response(DecisionSerializer(decision).data, status=status.HTTP_201_CREATED)


class StaffGroundTruthView(APIView):
    """A case's lab result and final diagnosis with every correction, as on the staff lab-result page.

    GET is audited like the page. POST records them through the same service as the page's form: a
    value that differs from the current one adds a row (the old rows stay), a correction needs a
    `note`, and repeating what is recorded is a 400. Auditors read; only clinicians record."""

    permission_classes = [ReadsAsReviewerWritesAsClinician]

    @extend_schema(responses={200: GroundTruthSerializer})
    def get(self, request, case_id):
        case = staff_case(request, case_id)
        audit(actor=request.user, action="view_ground_truth", obj=case, request=request, via="api")
        return Response(GroundTruthSerializer(ground_truth_history(case)).data)

    @extend_schema(request=GroundTruthRequestSerializer, responses={201: GroundTruthSerializer})
    def post(self, request, case_id):
        case = staff_case(request, case_id)
        body = GroundTruthRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            record_ground_truth(case=case, entered_by=request.user, **body.validated_data)
        except DjangoValidationError as error:
            raise api_error(error)
        return Response(GroundTruthSerializer(ground_truth_history(case)).data, status=status.HTTP_201_CREATED)
