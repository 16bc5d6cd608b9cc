"""cocomix: LM pretraining with continuous concepts (Tack et al., 2025), reimplemented on fairseq2.

Importing the package is cheap and torch-free; the method modules (`cocomix.mixers`,
`cocomix.concepts`, `cocomix.objectives`) need torch only, the runtime needs fairseq2 and Hydra.
"""

__version__ = "0.1.0"
