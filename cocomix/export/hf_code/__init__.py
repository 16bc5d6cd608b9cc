"""Modeling code copied into exported folders (loaded there with ``trust_remote_code=True``)."""
