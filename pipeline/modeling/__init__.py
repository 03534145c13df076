"""The model: multi-task encoder + heads, base models, tokenisation, outputs and the model folder."""
