"""Where a run's jobs execute. Executors are plugins (``register_executors``); the core's ``local``
(:mod:`.local`) and ``ray`` (:mod:`.ray`) are registered by :mod:`cxrbench.builtins.executors`
through the same hook a third party uses. :mod:`.base` holds what every executor is handed."""
