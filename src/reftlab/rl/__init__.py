"""The RL math: masked reductions, KL estimators, advantage estimators and losses.

Pure functions over tensors and scalars; nothing here sees a config, a logger, a device or a
file. Import them from their modules (`rl.advantages`, `rl.kl`, `rl.losses`, `rl.masked`,
`rl.prefix`). `rl.registry` names the estimators and losses the YAML can choose, with what each
needs; it imports no torch, so this package's `__init__` imports nothing either.
"""
