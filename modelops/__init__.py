"""Model operations, apart from clinical triage: live performance on lab-confirmed cases, active vs
challenger and history + image comparisons, promotion on evidence, their charts, staff pages, admin,
API and commands. Above the clinical reads (it measures on them); the records it manages live in the
model registry (`registry`), below the clinical pipeline."""
