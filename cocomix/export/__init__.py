"""A trained run as a Hugging Face folder (``tools/export_hf.py``): ``hf.export_run``."""
