"""Transfer to the 12 classification datasets of BYOL App. D (PROTOCOLS.md s.5): linear (L-BFGS) and fine-tuned."""
