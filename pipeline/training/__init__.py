"""Training: features, the transformers loop, the layer-wise recipe, decision-bias calibration."""
