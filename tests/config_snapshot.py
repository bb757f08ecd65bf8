"""A compact fingerprint of a config's settings, to compare configs across rewrites.

``tests/fixtures/config_snapshots.json`` holds the fingerprints of the 87 flat configs as they
were before they were composed from parts (written by ``python -m tests.config_snapshot``).
"""

import hashlib
import json
import sys
from pathlib import Path

# Trainer keys equal to Lightning's defaults say nothing: `max_steps: -1` next to `max_epochs`.
TRAINER_DEFAULTS = {"max_steps": -1, "max_epochs": None}
FIXTURE = Path(__file__).parent / "fixtures" / "config_snapshots.json"


def digest(value: object) -> str:
    """A short hash of a JSON-able value (key order does not matter)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def callback_key(callback: dict) -> str:
    """``<class name>:<hash of init_args>``."""
    return f"{callback['class_path'].rpartition('.')[2]}:{digest(callback.get('init_args', {}))}"


def snapshot(config: dict) -> dict:
    """``core``: hash of seed, model, data and trainer settings (not loggers or callbacks);
    ``callbacks``: one key per callback (see :func:`callback_key`), sorted."""
    trainer = dict(config.get("trainer") or {})
    trainer.pop("logger", None)
    callbacks = trainer.pop("callbacks", None) or []
    trainer = {k: v for k, v in trainer.items() if TRAINER_DEFAULTS.get(k, object()) != v}
    core = {"seed_everything": config.get("seed_everything"), "model": config["model"],
            "data": config["data"], "trainer": trainer}
    return {"core": digest(core), "callbacks": sorted(map(callback_key, callbacks))}


if __name__ == "__main__":  # python -m tests.config_snapshot configs/*.yaml > fixture
    import yaml

    shots = {Path(p).stem: snapshot(yaml.safe_load(Path(p).read_text())) for p in sys.argv[1:]}
    print(json.dumps(shots, indent=1, sort_keys=True))
