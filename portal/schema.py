"""drf-spectacular hooks: the published schema covers /api/v1/ only (the pages' own JSON poll is internal)."""

API_PREFIX = "/api/v1/"


def only_public_api(endpoints, **_):
    return [endpoint for endpoint in endpoints if endpoint[0].startswith(API_PREFIX)]
