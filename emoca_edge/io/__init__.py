"""Frame sources (images, folders, globs, videos, cameras, streams) and result sinks."""
from .sinks import AnnotatedSink, CsvSink, JsonlSink, NpzSink, ObjSink, Sink, check_gui, write_obj
from .sources import (FrameFormatError, Source, SourceItem, iter_array_frames, open_source, read_image,
                      to_rgb_uint8)

__all__ = ["AnnotatedSink", "CsvSink", "JsonlSink", "NpzSink", "ObjSink", "Sink", "check_gui", "write_obj",
           "FrameFormatError", "Source", "SourceItem", "iter_array_frames", "open_source", "read_image",
           "to_rgb_uint8"]
