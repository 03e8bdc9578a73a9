"""Backtest: recorded market data replayed through the trading core with fill, latency and hedge models.

:mod:`~fastmm.backtest.readers` load a capture into :class:`~fastmm.backtest.market.MarketData`;
:mod:`~fastmm.backtest.engine` replays it on an event-time clock through the same PriceAggregator,
TradingCore and HedgePlanner the live engine runs, against :mod:`~fastmm.backtest.queue` (a
queue-position fill model on the recorded book) and :mod:`~fastmm.backtest.hedge` (Kraken hedges);
:mod:`~fastmm.backtest.report` turns a run into metrics, JSON and plots; :mod:`~fastmm.backtest.sweep`
runs parameter grids on worker processes; :mod:`~fastmm.backtest.hftbt` runs the same data through
hftbacktest as an independent reference.
"""
