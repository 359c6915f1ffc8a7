"""Versioned JSON schema of the JSON Lines records written by ``emoca-edge run`` (one per frame)."""
from __future__ import annotations

import json
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent
FRAME_RECORD_SCHEMA = SCHEMA_DIR / "frame_record.schema.json"


def load_frame_record_schema() -> dict:
    """The JSON schema (draft 2020-12) of one JSONL frame record."""
    return json.loads(FRAME_RECORD_SCHEMA.read_text(encoding="utf-8"))
