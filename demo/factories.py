"""factory-boy factories for the portal's plain rows, shared by the demo (`seed_demo`) and the tests.

A factory writes its row as it is: no service checks and no side effects (no emails, no audit
entries, nothing after commit). That is what demo data and test fixtures need, and what a past
visit needs (the booking service refuses past slots by design). Photos, scores, decisions and lab
results are not made here: they go through the services (see `demo.history`), so their rules hold.
"""

from datetime import timedelta

import factory
from django.contrib.auth.models import User
from django.utils import timezone
from factory.django import DjangoModelFactory, Password

from portal.booking.consent import CARE_TEXT_VERSION, RESEARCH_TEXT_VERSION
from portal.booking.models import Appointment, Clinic, ConsentRecord, Service, Slot
from registry.models import ModelVersion
from triage.models import Case, Prediction, RoiSource


class UserFactory(DjangoModelFactory):
    """A user; an existing username is reused. Without `password` the account cannot sign in."""

    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user-{n:02d}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.org")
    password = Password(None)


class ClinicFactory(DjangoModelFactory):
    """A clinic site; an existing name is reused."""

    class Meta:
        model = Clinic
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Clinic {n}")
    address = factory.Sequence(lambda n: f"{n + 1} Example Street")


class ServiceFactory(DjangoModelFactory):
    """A bookable service; an existing name is reused."""

    class Meta:
        model = Service
        django_get_or_create = ("name",)

    name = "Skin lesion review"
    duration_minutes = 20


def tomorrow_at_this_time():
    return timezone.now().replace(microsecond=0) + timedelta(days=1)


class SlotFactory(DjangoModelFactory):
    """A free slot (no named clinician), tomorrow at this time unless `starts_at` is given."""

    class Meta:
        model = Slot

    clinic = factory.SubFactory(ClinicFactory)
    service = factory.SubFactory(ServiceFactory)
    starts_at = factory.LazyFunction(tomorrow_at_this_time)


class AppointmentFactory(DjangoModelFactory):
    """A booking with its consent records (as the patient gave them) and its open triage case."""

    class Meta:
        model = Appointment
        skip_postgeneration_save = True  # the consents hook writes its own rows

    patient = factory.SubFactory(UserFactory)
    slot = factory.SubFactory(SlotFactory)
    consent_care = True
    consent_research = False
    questionnaire = factory.LazyFunction(dict)
    case = factory.RelatedFactory("demo.factories.CaseFactory", factory_related_name="appointment")

    @factory.post_generation
    def consents(appointment, create, extracted, **kwargs):
        if not create:
            return
        for kind, given, text_version in (
            (ConsentRecord.Kind.CARE, appointment.consent_care, CARE_TEXT_VERSION),
            (ConsentRecord.Kind.RESEARCH, appointment.consent_research, RESEARCH_TEXT_VERSION),
        ):
            ConsentRecord.objects.create(
                appointment=appointment,
                kind=kind,
                given=given,
                text_version=text_version,
                recorded_by=appointment.patient,
            )


class CaseFactory(DjangoModelFactory):
    """The triage case of an appointment (made with every `AppointmentFactory`)."""

    class Meta:
        model = Case

    appointment = factory.SubFactory(AppointmentFactory, case=None)


class ModelVersionFactory(DjangoModelFactory):
    """A registered model version (not active unless `is_active=True`); an existing version name is reused."""

    class Meta:
        model = ModelVersion
        django_get_or_create = ("version",)

    version = factory.Sequence(lambda n: f"test-model-{n + 1}")
    architecture = "tiny"
    checkpoint_path = "/nonexistent/test.pt"
    threshold = 0.5


class ShadowPredictionFactory(DjangoModelFactory):
    """What `triage.analysis.run_challenger_in_shadow` stores for a photo: the challenger's score,
    never shown or used to flag; `probability` chosen by the caller."""

    class Meta:
        model = Prediction

    model_version = factory.SubFactory(ModelVersionFactory, is_challenger=True)
    role = Prediction.Role.CHALLENGER
    threshold = factory.SelfAttribute("model_version.threshold")
    roi_source = RoiSource.AUTO
