"""The FHIR R4 endpoints under /fhir/. One handler per resource type says which interactions and search
parameters it supports; the CapabilityStatement is made from the same declarations, so it states exactly
what the server does. Every read, search and write of patient data is audited, refusals included."""

from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.http import FileResponse
from django.urls import reverse
from rest_framework import status
from rest_framework.exceptions import MethodNotAllowed, NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from core.access import deny
from core.services import audit
from portal.fhir import inputs, resources, selectors, services
from portal.fhir.protocol import FhirInputError, FhirView
from portal.integrations.idempotency import idempotent
from triage.api import UploadRateThrottle


class ResourceHandler:
    """One resource type. Subclasses implement `read`, `search`, `create` and/or `update`, and name the
    search parameters they accept (`search_parameters`: {name: (FHIR type, documentation)})."""

    resource_type = ""
    search_parameters = {}
    audited = True  # patient data: every access is recorded

    def __init__(self, view):
        self.view = view
        self.request = view.request
        self.api_key = view.request.auth
        self.clinic = view.request.auth.clinic

    @classmethod
    def interactions(cls):
        names = [name for name in ("read", "update", "create") if getattr(cls, name, None) is not None]
        return names + (["search-type"] if getattr(cls, "search", None) is not None else [])

    read = search = create = update = None

    def audit(self, action, *, obj=None, allowed=True, **detail):
        if self.audited:
            audit(
                actor=self.api_key.user,
                action=f"fhir_{action}",
                obj=obj,
                allowed=allowed,
                request=self.request,
                resource_type=self.resource_type,
                **detail,
            )

    def not_found(self, resource_id, *, interaction="read", resource_type=None, element=None):
        """Refuse a resource the key's clinic does not have (another clinic's, or none): an audited 404."""
        resource_type = resource_type or self.resource_type
        where = f"{element}: " if element else ""
        details = {"element": element} if element else {}
        deny(
            self.request,
            actor=self.api_key.user,
            action=f"fhir_{interaction}",
            asked_for=f"{resource_type}/{resource_id}",
            rule="key_clinic",
            message=f"{where}{resource_type}/{resource_id} is not known at this clinic.",
            resource_type=self.resource_type,
            resource_id=str(resource_id)[:64],
            **details,
        )

    def read_appointment(self, resource_id):
        """The clinic's appointment a read names (audited), or a 404 (audited too)."""
        external = selectors.clinic_appointment(clinic=self.clinic, appointment_id=resource_id)
        if external is None:
            self.not_found(resource_id)
        self.audit("read", obj=external.appointment.case, resource_id=str(resource_id))
        return external

    def external_appointment(self, appointment_id, *, element):
        """The clinic's appointment a write names, or a 404 (audited)."""
        external = selectors.clinic_appointment(clinic=self.clinic, appointment_id=appointment_id)
        if external is None:
            self.not_found(appointment_id, interaction="write", resource_type="Appointment", element=element)
        return external

    def bundle(self, queryset, to_resource):
        params = self.request.query_params
        count, offset = inputs.paging(params)
        total = queryset.count()
        page = list(queryset[offset : offset + count])
        base = self.request.build_absolute_uri(self.request.path)
        query = {key: params.getlist(key) for key in params if key not in ("_offset",)}
        self_url = f"{base}?{urlencode({**query, '_offset': offset}, doseq=True)}"
        next_url = (
            f"{base}?{urlencode({**query, '_offset': offset + count}, doseq=True)}" if offset + count < total else None
        )
        self.audit("search", count=len(page), parameters={key: params.getlist(key) for key in params})
        return resources.search_bundle(
            [to_resource(item) for item in page], total=total, self_url=self_url, next_url=next_url
        )


class SlotHandler(ResourceHandler):
    resource_type = "Slot"
    audited = False  # free times are not patient data
    search_parameters = {
        "service-type": ("token", f"The service: its code in {resources.codes.SERVICE_SYSTEM} (Slot.serviceType)."),
        "start": ("date", "When the slot starts: eq (that day), ge, gt, le, lt; repeat for a range."),
        "status": ("token", "Only `free` slots are listed."),
    }

    def read(self, resource_id):
        slot, free = selectors.clinic_slot(clinic=self.clinic, slot_id=resource_id)
        if slot is None:
            self.not_found(resource_id)  # audited although free times are not patient data: another clinic's id
        return resources.slot_resource(slot, free=free)

    def search(self, params):
        inputs.check_parameters(params, self.search_parameters)
        if any(value != "free" for value in params.getlist("status")):
            raise FhirInputError("status: only free slots are listed (status=free).", expression="status")
        service_ids = None
        if "service-type" in params:
            service_ids = [
                inputs.token_value(value, system=resources.codes.SERVICE_SYSTEM, name="service-type")
                for value in params.getlist("service-type")
            ]
            if not all(value.isdigit() for value in service_ids):
                raise FhirInputError("service-type: use the service's code (a number, see Slot.serviceType).")
        bounds = inputs.date_bounds(params.getlist("start"), name="start")
        slots = selectors.free_clinic_slots(clinic=self.clinic, service_ids=service_ids, start_bounds=bounds)
        return self.bundle(slots, lambda slot: resources.slot_resource(slot, free=True))


class PatientHandler(ResourceHandler):
    resource_type = "Patient"
    search_parameters = {
        "identifier": ("token", f"The booking system's patient id ({resources.codes.PATIENT_ID_SYSTEM}|<id>).")
    }

    def read(self, resource_id):
        patient = selectors.clinic_patient(clinic=self.clinic, patient_id=resource_id)
        if patient is None:
            self.not_found(resource_id)
        self.audit("read", obj=patient.user, resource_id=str(patient.pk))
        return resources.patient_resource(patient)

    def search(self, params):
        inputs.check_parameters(params, self.search_parameters)
        identifier = None
        if "identifier" in params:
            identifier = inputs.token_value(
                params["identifier"], system=resources.codes.PATIENT_ID_SYSTEM, name="identifier"
            )
        return self.bundle(
            selectors.clinic_patients(clinic=self.clinic, identifier=identifier), resources.patient_resource
        )

    def create(self, body):
        patient, created = services.create_patient(api_key=self.api_key, **inputs.patient_registration(body))
        return resources.patient_resource(patient), created


class AppointmentHandler(ResourceHandler):
    resource_type = "Appointment"
    search_parameters = {
        "identifier": ("token", f"The booking system's appointment id ({resources.codes.APPOINTMENT_ID_SYSTEM}|<id>)."),
        "patient": ("reference", "Patient/<id>"),
        "status": ("token", "booked, cancelled or fulfilled"),
        "date": ("date", "When it starts: eq (that day), ge, gt, le, lt."),
    }

    def read(self, resource_id):
        external = self.read_appointment(resource_id)
        return resources.appointment_resource(external)

    def search(self, params):
        inputs.check_parameters(params, self.search_parameters)
        filters = {"start_bounds": inputs.date_bounds(params.getlist("date"), name="date")}
        if "identifier" in params:
            filters["identifier"] = inputs.token_value(
                params["identifier"], system=resources.codes.APPOINTMENT_ID_SYSTEM, name="identifier"
            )
        if "patient" in params:
            filters["patient_id"] = inputs.reference_id(params["patient"], "Patient", name="patient")
        if "status" in params:
            wanted = {value for raw in params.getlist("status") for value in raw.split(",")}
            filters["statuses"] = selectors.appointment_statuses_for(wanted, resources.APPOINTMENT_STATUS)
        return self.bundle(selectors.clinic_appointments(clinic=self.clinic, **filters), resources.appointment_resource)

    def create(self, body):
        external = services.book(api_key=self.api_key, request=self.request, **inputs.appointment_booking(body))
        return resources.appointment_resource(external), True

    def update(self, resource_id, body):
        change = inputs.appointment_change(body)
        external = selectors.clinic_appointment(clinic=self.clinic, appointment_id=resource_id)
        if external is None:
            self.not_found(resource_id, interaction="write")
        external = services.change_appointment(api_key=self.api_key, external=external, request=self.request, **change)
        return resources.appointment_resource(external)


class QuestionnaireHandler(ResourceHandler):
    resource_type = "Questionnaire"
    audited = False

    def read(self, resource_id):
        if resource_id != resources.codes.QUESTIONNAIRE_ID:
            raise NotFound(
                f"Questionnaire/{resource_id}: the portal publishes Questionnaire/{resources.codes.QUESTIONNAIRE_ID}."
            )
        return resources.questionnaire_resource()


class QuestionnaireResponseHandler(ResourceHandler):
    """One per appointment, with the appointment's id: PUT QuestionnaireResponse/<appointment id> sends the answers."""

    resource_type = "QuestionnaireResponse"

    def read(self, resource_id):
        external = self.read_appointment(resource_id)
        return resources.questionnaire_response_resource(external.appointment)

    def update(self, resource_id, body):
        answers = inputs.questionnaire_answers(body)
        external = self.external_appointment(resource_id, element="QuestionnaireResponse.id")
        appointment = services.record_answers(
            api_key=self.api_key, external=external, answers=answers, request=self.request
        )
        return resources.questionnaire_response_resource(appointment)


class ConsentHandler(ResourceHandler):
    resource_type = "Consent"
    search_parameters = {"patient": ("reference", "Patient/<id>: every consent given or withdrawn, oldest first.")}

    def read(self, resource_id):
        record = selectors.clinic_consent(clinic=self.clinic, consent_id=resource_id)
        if record is None:
            self.not_found(resource_id)
        self.audit("read", obj=record.appointment.case, resource_id=str(record.pk))
        return resources.consent_resource(record)

    def search(self, params):
        inputs.check_parameters(params, self.search_parameters)
        patient_id = inputs.reference_id(params["patient"], "Patient", name="patient") if "patient" in params else None
        return self.bundle(
            selectors.clinic_consents(clinic=self.clinic, patient_id=patient_id), resources.consent_resource
        )


class MediaHandler(ResourceHandler):
    """A photo's description; its bytes (as stored: re-encoded, metadata stripped) are Binary/<same id>."""

    resource_type = "Media"

    def read(self, resource_id):
        photo = selectors.clinic_photo(clinic=self.clinic, photo_id=resource_id)
        if photo is None:
            self.not_found(resource_id)
        self.audit("read", obj=photo, resource_id=str(photo.pk))
        return resources.media_resource(photo)

    def create(self, body):
        upload = inputs.photo_upload(body)
        external = self.external_appointment(upload.pop("appointment_id"), element="Media.partOf")
        photo = services.upload_photo(api_key=self.api_key, external=external, **upload)
        self.audit("create", obj=photo, resource_id=str(photo.pk))
        return resources.media_resource(photo), True


class BinaryHandler(ResourceHandler):
    resource_type = "Binary"

    def read(self, resource_id):
        photo = selectors.clinic_photo(clinic=self.clinic, photo_id=resource_id)
        if photo is None:
            self.not_found(resource_id)
        audit(
            actor=self.api_key.user,
            action="view_photo",
            obj=photo,
            request=self.request,
            photo_id=photo.pk,
            case_id=photo.case_id,
            via="fhir",
        )
        if photo.files_deleted_at is not None:
            raise FhirInputError(
                f"The photo's file was deleted on {photo.files_deleted_at:%Y-%m-%d} "
                f"({photo.get_files_deleted_reason_display().lower()}).",
                issue_type="deleted",
                status_code=410,
            )
        if not photo.is_viewable:
            raise FhirInputError(
                "The photo is being prepared (its metadata is removed first); try again in a minute.",
                issue_type="transient",
                status_code=404,
            )
        if "json" not in self.request.headers.get("Accept", ""):
            response = FileResponse(photo.image.open("rb"), content_type="image/jpeg")
            response["Cache-Control"] = "private, no-store"
            return response
        with photo.image.open("rb") as stored:
            return resources.binary_resource(photo, stored.read())


class RiskAssessmentHandler(ResourceHandler):
    resource_type = "RiskAssessment"

    def read(self, resource_id):
        case = self.read_appointment(resource_id).appointment.case
        return resources.risk_assessment_resource(case, selectors.case_report(case))


class DiagnosticReportHandler(ResourceHandler):
    resource_type = "DiagnosticReport"

    def read(self, resource_id):
        case = self.read_appointment(resource_id).appointment.case
        return resources.diagnostic_report_resource(case, selectors.case_report(case))


class ObservationHandler(ResourceHandler):
    """Mpox PCR results: POST one to record it (or correct the recorded one); read any of them."""

    resource_type = "Observation"

    def read(self, resource_id):
        lab_result, corrects = selectors.clinic_lab_result(clinic=self.clinic, observation_id=resource_id)
        if lab_result is None:
            self.not_found(resource_id)
        self.audit("read", obj=lab_result, resource_id=str(lab_result.pk))
        return resources.lab_observation_resource(lab_result, corrects=corrects)

    def create(self, body):
        result = inputs.lab_result(body)
        external = self.external_appointment(result.pop("appointment_id"), element="Observation.focus")
        lab_result = services.record_lab_result(api_key=self.api_key, external=external, **result)
        _, corrects = selectors.clinic_lab_result(clinic=self.clinic, observation_id=lab_result.pk)
        return resources.lab_observation_resource(lab_result, corrects=corrects), True


class DeviceHandler(ResourceHandler):
    resource_type = "Device"
    audited = False  # a model version, not patient data

    def read(self, resource_id):
        model_version = selectors.model_version(resource_id)
        if model_version is None:
            raise NotFound(f"Device/{resource_id} is not known.")
        return resources.device_resource(model_version)


HANDLERS = {
    handler.resource_type: handler
    for handler in (
        SlotHandler,
        PatientHandler,
        AppointmentHandler,
        QuestionnaireHandler,
        QuestionnaireResponseHandler,
        ConsentHandler,
        MediaHandler,
        BinaryHandler,
        RiskAssessmentHandler,
        DiagnosticReportHandler,
        ObservationHandler,
        DeviceHandler,
    )
}


def _handler(view, resource_type, interaction):
    handler_class = HANDLERS.get(resource_type)
    if handler_class is None:
        raise NotFound(f"This server does not support {resource_type}; see /fhir/metadata.")
    if getattr(handler_class, interaction) is None:
        raise MethodNotAllowed(
            view.request.method, f"{resource_type} does not support {interaction}; see /fhir/metadata."
        )
    return handler_class(view)


def _as_fhir_outcome(post):
    """`idempotent` answers a reused key with a plain JSON 422; here it becomes an OperationOutcome."""

    @wraps(post)
    def wrapper(view, request, *args, **kwargs):
        response = post(view, request, *args, **kwargs)
        if not isinstance(response.data, dict) or "resourceType" not in response.data:
            raise FhirInputError(
                " ".join(str(message) for messages in response.data.values() for message in messages),
                issue_type="conflict",
                status_code=response.status_code,
            )
        return response

    return wrapper


class TypeView(FhirView):
    """GET /fhir/<Type>?params: search. POST /fhir/<Type>: create (honours `Idempotency-Key`)."""

    throttle_scope = "uploads"

    def get_throttles(self):
        if self.request.method == "POST" and self.kwargs.get("resource_type") == "Media":
            return [UploadRateThrottle()]
        return []

    def get(self, request, resource_type):
        return Response(_handler(self, resource_type, "search").search(request.query_params))

    @_as_fhir_outcome
    @idempotent
    def post(self, request, resource_type):
        handler = _handler(self, resource_type, "create")
        resource, created = handler.create(self.body())
        location = request.build_absolute_uri(reverse("fhir-instance", args=[resource_type, resource["id"]]))
        return Response(
            resource,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
            headers={"Location": location} if created else {},
        )


class InstanceView(FhirView):
    """GET /fhir/<Type>/<id>: read. PUT: update."""

    def get(self, request, resource_type, resource_id):
        answer = _handler(self, resource_type, "read").read(resource_id)
        return answer if isinstance(answer, FileResponse) else Response(answer)

    def put(self, request, resource_type, resource_id):
        handler = _handler(self, resource_type, "update")
        body = self.body()
        if body.get("id") not in (None, resource_id):
            raise FhirInputError(
                f"The resource's id ({body.get('id')}) is not the id in the URL ({resource_id}).",
                expression=f"{resource_type}.id",
            )
        return Response(handler.update(resource_id, body))


class MetadataView(FhirView):
    """GET /fhir/metadata: the CapabilityStatement (no key needed)."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        return Response(
            resources.capability_statement(
                handlers=HANDLERS.values(),
                base_url=request.build_absolute_uri(reverse("fhir-metadata")).rsplit("/", 1)[0],
                upload_limit_bytes=settings.PHOTO_MAX_BYTES,
            )
        )


class UnknownPathView(FhirView):
    """Anything else under /fhir/: a 404 OperationOutcome instead of an HTML page."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def nothing_here(self, request, *args, **kwargs):
        raise NotFound(f"Nothing at {request.path}; see /fhir/metadata for what is supported.")

    get = post = put = patch = delete = nothing_here
