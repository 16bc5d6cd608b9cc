"""Concepts: TopK SAE, attribution and the registered concept sources (plain torch)."""
