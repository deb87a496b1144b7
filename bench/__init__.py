"""sailplan's benchmarks: `make bench` (python -m bench). Results go to bench/RESULTS.md."""
