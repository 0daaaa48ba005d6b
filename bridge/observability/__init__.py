"""Request context, structured logs, Prometheus metrics and the audit trail: what the bridge
tells its operators.  Imports nothing above settings (no directory, mapping or service)."""
