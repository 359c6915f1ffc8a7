"""``emoca-edge info BUNDLE``: what a bundle holds (family, input, crop, outputs, files, provenance)."""
from __future__ import annotations

import json
import sys

HELP = "show what a bundle holds and verify its checksums"


def add_arguments(p) -> None:
    p.add_argument("bundle", help="bundle directory")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 verification of the files")


def run(args) -> int:
    from emoca_edge.bundle import Bundle, BundleError

    try:
        bundle = Bundle.load(args.bundle, verify=not args.no_verify)
    except BundleError as exc:
        print(f"emoca-edge info: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(bundle.manifest, indent=2))
    else:
        print(bundle.describe())
        print("checksums   " + ("not verified (--no-verify)" if args.no_verify else "verified (sha256 of every file)"))
    return 0
