"""What booking announces when a patient, staff or a booking system changes an appointment
(webhooks listen in `portal.integrations`, so a clinic's booking system hears of a change made in
the portal). Sent after commit with `triage.events.send_on_commit`; each carries `appointment`."""

from django.dispatch import Signal

appointment_cancelled = Signal()
appointment_rescheduled = Signal()  # also `previous_starts_at`
