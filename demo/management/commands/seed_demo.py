"""Demo data for local use and tests. Idempotent; never run automatically. Queues no work: no
analyses, emails or webhooks (see `demo.history.without_after_commit_work`)."""

import os
from datetime import time

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.utils import timezone

from demo.factories import ClinicFactory, ServiceFactory
from demo.history import SECOND_SITE, seed_history, without_after_commit_work
from modelops.charts import refresh_stored_figures
from portal.booking.models import Schedule
from portal.booking.services import generate_slots
from triage.permissions import CLINICIANS_GROUP
from triage.services import add_site_membership

# Two sites, two services, and the demo clinician's week: (site, service, start, end), Monday to Friday.
DEMO_CLINIC = "Demo Sexual Health Clinic"
DEMO_SITES = {DEMO_CLINIC: "1 Example Street", SECOND_SITE: "2 River Road"}
DEMO_SERVICES = {"Sexual health check": 20, "Skin lesion review": 20}
DEMO_WEEK = [
    ("Demo Sexual Health Clinic", "Sexual health check", time(9, 0), time(12, 0)),
    ("Demo Sexual Health Clinic", "Skin lesion review", time(13, 0), time(15, 0)),
    (SECOND_SITE, "Skin lesion review", time(15, 0), time(17, 0)),
]
ACCOUNTS = {  # role: (default username, default password)
    "patient": ("patient", "demo-patient-pass"),
    "clinician": ("clinician", "demo-clinician-pass"),
    "admin": ("admin", "demo-admin-pass"),
}


class Command(BaseCommand):
    help = (
        "Create the clinicians group, demo sites, services and a clinician's schedule (and its slots), demo "
        "accounts and a synthetic six-week history (decisions, lab results, model scores) for the performance pages."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-history", action="store_true", help="Skip the synthetic past appointments.")
        for role, (username, password) in ACCOUNTS.items():
            env = f"DEMO_{role.upper()}"
            parser.add_argument(f"--{role}-username", default=os.environ.get(f"{env}_USERNAME", username))
            parser.add_argument(f"--{role}-password", default=os.environ.get(f"{env}_PASSWORD", password))

    def handle(self, *args, **options):
        with without_after_commit_work():
            self._seed(options)

    def _seed(self, options):
        clinicians, _ = Group.objects.get_or_create(name=CLINICIANS_GROUP)
        patient = self._account(options, "patient")
        clinician = self._account(options, "clinician", is_staff=True)
        clinician.groups.add(clinicians)
        admin = self._account(options, "admin", is_staff=True, is_superuser=True)

        sites = {name: ClinicFactory(name=name, address=address) for name, address in DEMO_SITES.items()}
        services = {
            name: ServiceFactory(name=name, duration_minutes=minutes) for name, minutes in DEMO_SERVICES.items()
        }
        for site, service, start, end in DEMO_WEEK:
            for weekday in range(5):
                Schedule.objects.get_or_create(
                    clinician=clinician,
                    clinic=sites[site],
                    service=services[service],
                    weekday=weekday,
                    start_time=start,
                    end_time=end,
                    defaults={"valid_from": timezone.localdate()},
                )
        created_slots = generate_slots()
        for site in sites.values():  # clinicians see only the cases of their sites
            add_site_membership(user=clinician, clinic=site, on_duty=True)

        self.stdout.write(f"{len(sites)} sites, {len(services)} services: {created_slots} new slots.")
        if not options["no_history"]:
            cases = seed_history(clinic=sites[DEMO_CLINIC], clinician=clinician, log=self.stdout.write)
            if cases:
                self.stdout.write(
                    f"Synthetic history: {cases} past cases with decisions, lab results and scores (invented data)."
                )
            refresh_stored_figures()  # the performance pages' charts, drawn now rather than on their first view
        for role, user in (("patient", patient), ("clinician", clinician), ("admin", admin)):
            self.stdout.write(f"  {role:<10} {user.username} / {options[f'{role}_password']}")

    def _account(self, options, role, **flags):
        """Create or update the account so its password and flags match the arguments."""
        user, _ = User.objects.get_or_create(username=options[f"{role}_username"])
        user.email = f"{user.username}@example.org"
        for name, value in flags.items():
            setattr(user, name, value)
        user.set_password(options[f"{role}_password"])
        user.save()
        return user
