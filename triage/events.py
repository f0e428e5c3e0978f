"""What triage announces to the rest of the portal (webhooks listen in `portal.integrations`).

Each signal is sent only once the transaction that caused it commits, so a listener never sees
a change that was rolled back. Senders: `triage.services` (decisions) and `triage.analysis`
(flags and photos to take again). Every signal carries `case`; `photo_retake_needed` also `photo`.
"""

import logging

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

case_flagged = Signal()  # a case's flag went from off to on
case_decided = Signal()  # a clinician recorded a decision (kwarg `decision`)
photo_retake_needed = Signal()  # a photo cannot be used; the patient should take it again


def send_on_commit(signal, **kwargs):
    """Announce after commit; a failing listener is logged and never undoes or breaks the sender's work."""

    def send():
        for listener, result in signal.send_robust(sender="triage", **kwargs):
            if isinstance(result, Exception):
                logger.error("Listener %r failed", listener, exc_info=result)

    transaction.on_commit(send)
