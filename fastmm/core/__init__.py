"""fastmm's trading core: pure state machines, no sockets, no clocks, no processes.

Time comes in as an argument (int nanoseconds), prices and sizes are integer ticks and lots, money is
integer units of 1e-8 PYUSD (:mod:`fastmm.core.money`). The same objects run live, in the simulator, in
the backtest and in unit tests; :class:`fastmm.core.trading_core.TradingCore` is the one object a shell
drives.
"""
