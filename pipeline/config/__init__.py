"""Run configuration, label schema and default paths."""
