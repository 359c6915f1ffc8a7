"""PyTorch world: importers of official checkpoints (DECA, EMOCA, SMIRK, EMOCA emotion
regressor), safe unpickling, ONNX export with parity checks and bundle writing."""
