"""Sign-in lockout with two limits: per account (a user name from one address) and per address.

django-axes counts failures per combination in AXES_LOCKOUT_PARAMETERS (here: user name + address,
then address alone) but compares them all with one AXES_FAILURE_LIMIT. An address is shared by
many patients (a clinic's or a household's network), so it gets a higher limit of its own:
its count is scaled so that reaching AXES_ADDRESS_FAILURE_LIMIT is what reaches AXES_FAILURE_LIMIT.
"""

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.db.models import Sum


class AccountAndAddressLockout(AxesDatabaseHandler):
    def get_failures(self, request, credentials=None) -> int:
        per_account, per_address = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        # floor(n × L / A) ≥ L exactly when n ≥ A.
        return max(per_account, per_address * settings.AXES_FAILURE_LIMIT // settings.AXES_ADDRESS_FAILURE_LIMIT)

    def reset_user_attempts(self, request, credentials=None) -> int:
        """A successful sign-in clears that account's failures, not those of every user name tried
        from the address (else one valid account would reset the address limit)."""
        per_account = self.filter_user_attempts(request, credentials)[0]
        count, _ = per_account.delete()
        return count
