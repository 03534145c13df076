"""Gold-set annotation: the terminal annotator and Label Studio import/export."""
