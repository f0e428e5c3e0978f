"""drf-spectacular hooks: the published schema covers /api/v1/ only (the pages' own JSON poll is
internal), documents the error answers every client must handle, and is the same on every database."""

from contextlib import contextmanager

from django.apps import apps
from django.db import connection
from django.db.backends.base.operations import BaseDatabaseOperations
from drf_spectacular.generators import SchemaGenerator

API_PREFIX = "/api/v1/"

ERROR_SCHEMAS = {
    "Error": {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
        "description": "Authentication, permission, not found, rate limit.",
    },
    "ValidationError": {
        "type": "object",
        "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "description": "Plain-language messages by field (`non_field_errors` for the request as a whole).",
    },
}


def only_public_api(endpoints, **_):
    return [endpoint for endpoint in endpoints if endpoint[0].startswith(API_PREFIX)]


def document_errors(result, **_):
    """Add the error answers to each operation: 400 everywhere (a control character in the path or query
    string is refused before any view, portal.request_guard; for writes and filters also invalid values),
    401 or 403 by auth, 404 with a path id or a page number, 413 for a JSON body over the upload limit,
    429 where limits apply, 422 where an Idempotency-Key may be reused wrongly."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(ERROR_SCHEMAS)
    for path, operations in result["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            uses_key = any("ApiKeyAuth" in requirement for requirement in operation.get("security", []))
            parameters = operation.get("parameters", [])
            headers = {parameter["name"] for parameter in parameters if parameter["in"] == "header"}
            query = {parameter["name"] for parameter in parameters if parameter["in"] == "query"}
            errors = {"401" if uses_key else "403": "Not signed in, no valid API key, or not allowed."}
            if uses_key:
                errors["403"] = "Not allowed."
                errors["429"] = "Too many requests (uploads) or too many bad API keys from this address."
            errors["400"] = (
                "The request was refused (a control character in the address, or invalid data); nothing was changed."
            )
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                errors["413"] = "The JSON body is larger than the upload limit."
            if "{" in path or "page" in query:
                errors["404"] = "Not found (or not yours), or no such page."
            if "Idempotency-Key" in headers:
                errors["422"] = "This Idempotency-Key was used for a different request."
            for code, description in errors.items():
                schema = "ValidationError" if code in ("400", "422") else "Error"
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
                    },
                )
    return result


class PortableSchemaGenerator(SchemaGenerator):
    """Integer bounds come from the model fields' validators, which take the running database's
    column ranges (SQLite gives every positive integer 64 bits). The schema is generated with the
    standard SQL ranges instead (PostgreSQL's), so docs/openapi.yaml does not depend on the database."""

    def get_schema(self, *args, **kwargs):
        with _standard_integer_ranges():
            return super().get_schema(*args, **kwargs)


@contextmanager
def _standard_integer_ranges():
    operations = connection.ops
    operations.integer_field_range = lambda internal_type: BaseDatabaseOperations.integer_field_range(
        operations, internal_type
    )
    _forget_field_validators()  # cached per field: computed again with the standard ranges
    try:
        yield
    finally:
        del operations.integer_field_range
        _forget_field_validators()


def _forget_field_validators():
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            field.__dict__.pop("validators", None)
