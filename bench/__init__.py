"""Benchmarks: `make bench` runs every bench module and writes bench/results/<name>.json.

A bench module is ``bench/<name>.py`` with ``run(out_dir: pathlib.Path) -> dict``; the harness
writes the returned dict to ``out_dir/<name>.json``. Speed and memory live here, never in tests.
"""
