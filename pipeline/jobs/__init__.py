"""Scheduled jobs: the cron-safe incremental reclassify."""
