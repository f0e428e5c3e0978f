"""Demo data at the top of the portal, beside `bench`: the `seed_demo` command, its synthetic
clinic history, and the factory-boy factories that the demo and the tests share. Product code
(portal, triage, ml) never imports it (.importlinter)."""
