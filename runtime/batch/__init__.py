"""Batch mix-and-match: ``mnm mix BUNDLE --batch PLAN --out DIR`` on one process, shards or Ray.

``plan`` reads and checks the plan as a stream; ``draws`` gives each row its random factors from
its line and the seed; ``manifest`` records what made an output folder (trusted resume); ``store``
writes to a folder or a ``pyarrow.fs`` URL; ``mixing`` mixes a window of rows with one pipeline
(grouped by reference); ``runner`` runs the windows here (``--shard I/N``); ``ray_data`` runs them
on Ray Data; ``index`` writes ``--index FILE``. docs/runtime.md, "Batches", tells the whole story.
"""
