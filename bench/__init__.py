"""Inference benchmarks for the triage portal: model, worker and upload-to-result latency (issue #5).

Run with ``python -m bench``; see bench/README.md for what each figure means.
"""
