"""Inference: the Predictor (torch / ONNX), classifying items, ONNX export, abstaining, what to label next."""
from pipeline.inference.abstain import ABSTAIN, apply_min_confidence, check_min_confidence

__all__ = ["ABSTAIN", "apply_min_confidence", "check_min_confidence"]
