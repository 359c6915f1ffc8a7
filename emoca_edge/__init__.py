"""emoca-edge runtime: bundles of ONNX encoders and face-model arrays run through ONNX Runtime.

The runtime depends on numpy, onnxruntime, opencv-python-headless and the native rasterizer
extension only; it never imports torch. The PyTorch world (model definitions, importers of
official checkpoints, ONNX export, training) is installed as ``emoca_edge.training`` and
``emoca_edge.export`` with the ``[export]`` extra.

Data flow of one frame: frame -> detect -> landmarks -> track -> crop -> reconstruct
(encoders -> FLAME -> landmarks -> emotion) -> render -> outputs.
"""

__version__ = "0.1.0"
