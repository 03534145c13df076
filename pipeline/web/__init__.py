"""The results dashboard (``threadstance serve``): a read-only web app over the store."""
