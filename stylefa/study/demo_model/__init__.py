"""The demo generator shipped with stylefa: where it lives (read by ``stylefa.study.demo``, which
runs it, and ``stylefa.study.study``, which says in the report whether a study used it).

The files beside this one (``MODEL_CARD.md``, ``metrics.json``, ``samples.png``) are written by
``tools/make_demo_model.py``."""

from pathlib import Path

DEMO_MODEL_DIR = Path(__file__).resolve().parent
DEMO_MODEL_FILE = "demo_generator.safetensors"
