"""Evaluation on the gold set: scoring with bootstrap intervals, baselines, annotator agreement."""
