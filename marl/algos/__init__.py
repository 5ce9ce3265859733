"""Algorithms, one registry entry each (:mod:`marl.algos.registry`); trainers implement
:class:`marl.algos.base.Trainer`; :func:`marl.algos.factory.make_trainer` builds a run's trainer.

This package's ``__init__`` imports nothing, so importing one algorithm never drags in another
(nor the config, nor self-play).
"""
