"""The runtime: Hydra composition, conversion to fairseq2's recipe config, run folders."""
