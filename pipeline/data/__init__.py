"""Labelled data: gold/label files, the training corpus, public data sets, splits and data checks."""
