"""The methods: one module each, orchestration only (`train_and_evaluate(env, model)`).

`registry` lists them (the one list of method names), `env` builds a run's surroundings and the
stages' settings, `warmup` and `evaluation` are the steps every method shares, and `job`
dispatches one run to its method. This package's `__init__` imports nothing, so that the
command line can read the registry without loading torch.
"""
