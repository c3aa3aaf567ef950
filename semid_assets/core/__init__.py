"""The pure library: numpy / torch / faiss maths with no orchestrator import.

Everything here is usable from a notebook and tested alone; the Dagster layer in
``semid_assets`` only reads inputs, calls these functions and writes outputs.
"""
