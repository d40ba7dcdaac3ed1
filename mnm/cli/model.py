"""`mnm model summary` (filled in by the networks work)."""
