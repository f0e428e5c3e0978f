"""Shared plumbing below every domain app: the audit log and `audit()`, the client address of a
request, request ids, and worker heartbeats. Django-aware, domain-free: it imports no app of the
project (import-linter holds that)."""
