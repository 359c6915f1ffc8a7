"""PyTorch world: model definitions (ResNet-50 / MobileNetV3 encoders, detail decoder, FLAME,
emotion regressor) and training. Needs the ``[export]`` extra (torch)."""
