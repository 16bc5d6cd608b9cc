"""Recipe files (Hydra YAML) and their runner: `python -m recipes.run RECIPE [overrides]`."""
