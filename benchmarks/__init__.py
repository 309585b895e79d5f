"""securetf benchmarks: each module's ``run()`` returns rows measured beside a baseline."""
