"""``emoca-edge run``: process images, folders, globs, videos, cameras or streams."""
from __future__ import annotations

import json
import sys
from pathlib import Path

HELP = "Run face capture on images, a folder or glob, a video, a camera index or a stream URL."


def add_arguments(p) -> None:
    p.add_argument("input", help="image, folder, glob pattern (quote it), video file, camera index (0) or stream URL")
    p.add_argument("--bundle", default=None, help="imported bundle directory (EMOCA/DECA/SMIRK); default: built-in models")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "tensorrt"), help="ONNX Runtime device")
    p.add_argument("--out", default="emoca_edge_out", help="output directory (default: %(default)s)")
    p.add_argument("--jsonl", action="store_true", help="write results.jsonl (one record per frame)")
    p.add_argument("--csv", action="store_true", help="write results.csv (scalar columns, one row per face)")
    p.add_argument("--video", action="store_true",
                   help="write annotated outputs: <name>_annotated.mp4 for videos, .png for images")
    p.add_argument("--npz", action="store_true", help="write results.npz (all per-face arrays)")
    p.add_argument("--obj", action="store_true", help="write meshes/<name>_f<frame>_t<track>.obj per face")
    p.add_argument("--max-faces", type=int, default=0, help="at most N faces per frame (0 = all)")
    p.add_argument("--every", "--detect-every", dest="every", type=int, default=10,
                   help="re-run the face detector every N video frames (faces are tracked in between; "
                        "1 = detect on every frame; default %(default)s)")
    p.add_argument("--stride", type=int, default=1, help="process every Nth video frame (default 1 = all)")
    p.add_argument("--smoothing", type=float, default=1.0,
                   help="temporal smoothing strength for videos (One-Euro; 0 = off, 1 = default, "
                        "larger = smoother); never applied to still images")
    p.add_argument("--refine-crop", action="store_true",
                   help="bundles with the deca68 crop: re-crop from the bundle's own 68 landmarks and "
                        "reconstruct again (closer to the official crop, twice the cost)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N items")
    p.add_argument("--show", action="store_true", help="display annotated frames (needs OpenCV with GUI)")
    p.add_argument("--no-mesh", action="store_true", help="annotated outputs without the mesh overlay")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--summary-json", default=None, help="also write the summary as JSON to this file")


def build_sinks(args, out: Path) -> list:
    from ..io import AnnotatedSink, CsvSink, JsonlSink, NpzSink, ObjSink

    sinks = []
    if args.jsonl:
        sinks.append(JsonlSink(out / "results.jsonl"))
    if args.csv:
        sinks.append(CsvSink(out / "results.csv"))
    if args.npz:
        sinks.append(NpzSink(out / "results.npz"))
    if args.obj:
        sinks.append(ObjSink(out / "meshes"))
    if args.video or args.show:
        sinks.append(AnnotatedSink(out, images=args.video, video=args.video, show=args.show, mesh=not args.no_mesh))
    return sinks


def run(args) -> int:
    from ..io import open_source
    from ..io.progress import ProgressBar
    from ..pipeline import Pipeline

    if args.show:
        from ..io import check_gui

        try:
            check_gui()
        except RuntimeError as exc:
            print(f"emoca-edge run: {exc}", file=sys.stderr)
            return 2
    if not (args.jsonl or args.csv or args.video or args.npz or args.obj or args.show):
        args.jsonl = args.csv = True  # something useful by default
    if args.every < 1 or args.stride < 1 or args.max_faces < 0:
        print("emoca-edge run: --every and --stride must be >= 1, --max-faces >= 0", file=sys.stderr)
        return 2
    try:
        source = open_source(args.input, max_frames=args.max_frames)
    except FileNotFoundError as exc:
        print(f"emoca-edge run: {exc}", file=sys.stderr)
        return 2
    try:
        pipe = Pipeline(bundle=args.bundle, device=args.device, max_faces=args.max_faces,
                        detect_every=args.every, smoothing=args.smoothing, refine_crop=args.refine_crop)
    except Exception as exc:  # bundle / provider problems: one clear line, no traceback
        print(f"emoca-edge run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sinks = build_sinks(args, out)
    progress = None if args.quiet else ProgressBar(source.total)
    summary = pipe.run(source, sinks, progress=progress, stride=args.stride)
    print(summary.format())
    written = sorted(p for p in out.rglob("*") if p.is_file())
    if written:
        print(f"  outputs in {out}/: " + ", ".join(str(p.relative_to(out)) for p in written[:12])
              + (f" ... ({len(written)} files)" if len(written) > 12 else ""))
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.as_dict(), indent=2))
    return 0
