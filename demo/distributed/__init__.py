"""``make demo-distributed``: a 2-worker TensorFlow job through the network shield, verified.

See ``__main__.py``; run as ``python -m demo.distributed`` (root: namespaces, FUSE, nftables).
"""
