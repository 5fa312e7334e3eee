"""An example run_live plugin: buys YES when the YES mid has risen by at least `min_rise`
over the last `lookback` rows of a market and the ask is at most `max_price`.

Use it with a strategy file of `strategy_type: plugin`:

    "plugin": {"module": "example_plugin", "class": "Momentum",
               "params": {"lookback": 5, "min_rise": 0.01, "max_price": 0.9, "count": 1}}

with this file in the same folder as the strategy file (the runner puts that folder on
PYTHONPATH). Rows arrive as snapshot/v1 JSON objects (prices in cents, as in the files).
"""

from collections import defaultdict, deque


class Momentum:
    def __init__(self, lookback=5, min_rise=0.01, max_price=0.9, count=1):
        self.lookback = int(lookback)
        self.min_rise = float(min_rise)
        self.max_price = float(max_price)
        self.count = int(count)
        self.mids = defaultdict(lambda: deque(maxlen=self.lookback + 1))

    def on_line(self, line, ctx, now_ms):
        if "event" in line or not ctx["trusted"]:  # a marker (gap, resync, closed)
            return []
        bid, ask = line.get("yes_bid"), line.get("yes_ask")
        if bid is None or ask is None:
            return []
        mids = self.mids[ctx["market"]]
        mids.append((bid + ask) / 200.0)
        if len(mids) <= self.lookback:
            return []
        ask_dollars = ask / 100.0
        if mids[-1] - mids[0] >= self.min_rise and ask_dollars <= self.max_price:
            return [{
                "market": ctx["market"],
                "side": "yes",
                "count": self.count,
                "limit": "%.4f" % ask_dollars,
                "reason": "mid rose %.3f over %d rows" % (mids[-1] - mids[0], self.lookback),
            }]
        return []

    def on_market_done(self, market):
        self.mids.pop(market, None)
