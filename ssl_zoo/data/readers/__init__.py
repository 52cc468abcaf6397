"""Readers for official on-disk dataset releases (one module per dataset family)."""
