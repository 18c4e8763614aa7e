"""Where the batch stages run: in this process and its worker pool (local), or on a Ray cluster.

May import ``ml.catalog``, ``ml.frames``, ``ml.visual``; nothing above.
"""
