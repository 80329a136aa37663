"""Child-process drivers, one per reader/writer; each prints nothing and writes one JSON result.

They must import only numpy, msgpack and the library they drive: the atdata 0.7 driver runs in
``benchmarks/.venv07`` (Python 3.12), where our ``atdata`` is not installed.
"""
