"""Importers: checkpoints from other code bases turned into mnm's own checkpoint format.

``mnm.importers.mixnmatch`` reads the authors' published MixNMatch files (docs/importer.md).
Importing this package imports nothing heavy; each importer imports torch itself.
"""
