"""notifyd's benchmarks (not tests): each prints its figures and the ratio to its baseline.

Run them all with ``make bench`` (``python -m bench``) or one with ``python -m bench.drain``.
All traffic goes to 127.0.0.1; every benchmark is bounded in requests and time.
"""
