"""The SQLite store of threads, items, text revisions and predictions."""
