"""Performance measurement: inference throughput/memory, training MFU and per-part profiles.

`dnahnet.perf.inference.bench_inference` and `dnahnet.perf.train_profile.bench_train`
are what `dnahnet bench inference` / `dnahnet bench train` call; `dnahnet.perf.measure`
holds the shared pieces (isolated child processes with a memory cap, peak memory,
a measured matmul peak, timing, a machine description).
"""
