"""Blind boxes: boxes and prizes, verifiable draws, seeds and proofs, members' age bands."""
