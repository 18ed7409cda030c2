"""Runs one benchmark module in a fresh process (see ``bench/__main__.py``)."""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys


def main(name: str) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    module = importlib.import_module(f"bench.bench_{name}")
    results = module.run()
    print("BENCH-RESULTS " + json.dumps([dataclasses.asdict(r) for r in results]), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
