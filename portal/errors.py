"""Error pages: under /api/ a client gets JSON (`{"detail": ...}`) even when no API view was reached,
e.g. for a malformed id in the URL; everywhere else Django's own pages."""
from django.http import JsonResponse
from django.views import defaults

from portal.schema import API_PREFIX


def page_not_found(request, exception):
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
