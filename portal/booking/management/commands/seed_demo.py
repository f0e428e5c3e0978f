"""Demo data for local use and tests. Idempotent; never run automatically."""
import os
from datetime import datetime, time, timedelta

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from portal.booking.demo_history import seed_history
from portal.booking.models import Clinic, Slot
from triage.permissions import CLINICIANS_GROUP
from triage.services import add_site_membership

DEMO_CLINIC = "Demo Sexual Health Clinic"
DAYS_AHEAD = 14
DAY_START, DAY_END = time(9, 0), time(17, 0)
SLOT_MINUTES = 20
ACCOUNTS = {  # role: (default username, default password)
    "patient": ("patient", "demo-patient-pass"),
    "clinician": ("clinician", "demo-clinician-pass"),
    "admin": ("admin", "demo-admin-pass"),
}


class Command(BaseCommand):
    help = ("Create the clinicians group, a demo clinic with two weeks of slots, demo accounts and a synthetic "
            "four-week history (decisions, lab results, model scores) for the performance pages.")

    def add_arguments(self, parser):
        parser.add_argument("--no-history", action="store_true", help="Skip the synthetic past appointments.")
        for role, (username, password) in ACCOUNTS.items():
            env = f"DEMO_{role.upper()}"
            parser.add_argument(f"--{role}-username", default=os.environ.get(f"{env}_USERNAME", username))
            parser.add_argument(f"--{role}-password", default=os.environ.get(f"{env}_PASSWORD", password))

    @transaction.atomic
    def handle(self, *args, **options):
        clinicians, _ = Group.objects.get_or_create(name=CLINICIANS_GROUP)
        clinic, _ = Clinic.objects.get_or_create(name=DEMO_CLINIC, defaults={"address": "1 Example Street"})
        created_slots = self._create_slots(clinic)

        patient = self._account(options, "patient")
        clinician = self._account(options, "clinician", is_staff=True)
        clinician.groups.add(clinicians)
        add_site_membership(user=clinician, clinic=clinic, on_duty=True)  # clinicians see only their sites
        admin = self._account(options, "admin", is_staff=True, is_superuser=True)

        self.stdout.write(f"{clinic.name}: {created_slots} new slots.")
        if not options["no_history"]:
            cases = seed_history(clinic=clinic, clinician=clinician, log=self.stdout.write)
            if cases:
                self.stdout.write(f"Synthetic history: {cases} past cases with decisions, lab results and scores (invented data).")
        for role, user in (("patient", patient), ("clinician", clinician), ("admin", admin)):
            self.stdout.write(f"  {role:<10} {user.username} / {options[f'{role}_password']}")

    def _create_slots(self, clinic):
        today = timezone.localdate()
        now = timezone.now()
        slots = []
        for offset in range(DAYS_AHEAD):
            day = today + timedelta(days=offset)
            if day.weekday() >= 5:
                continue
            start = timezone.make_aware(datetime.combine(day, DAY_START))
            end = timezone.make_aware(datetime.combine(day, DAY_END))
            while start < end:
                if start > now:
                    slots.append(Slot(clinic=clinic, starts_at=start, duration_minutes=SLOT_MINUTES))
                start += timedelta(minutes=SLOT_MINUTES)
        before = clinic.slots.count()
        Slot.objects.bulk_create(slots, ignore_conflicts=True)
        return clinic.slots.count() - before

    def _account(self, options, role, **flags):
        """Create or update the account so its password and flags match the arguments."""
        user, _ = User.objects.get_or_create(username=options[f"{role}_username"])
        user.email = f"{user.username}@example.org"
        for name, value in flags.items():
            setattr(user, name, value)
        user.set_password(options[f"{role}_password"])
        user.save()
        return user
