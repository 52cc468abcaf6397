"""NYU Depth v2 depth-estimation transfer with Laina et al.'s fast up-projections (BYOL App. D.6; PROTOCOLS.md s.6)."""
