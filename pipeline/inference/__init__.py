"""Inference: the Predictor (torch / ONNX), classifying items, ONNX export."""
