"""run_live's plugin host: speaks run_live.plugin/v1 (docs/PLUGINS.md) on stdin/stdout.

The runner starts `python3 host.py` with the strategy file's folder on PYTHONPATH and sends
`hello` with the module, class and params. The host imports `module`, builds
`class(**params)` and, for each `line`, calls `on_line(line, ctx, now_ms)`, which returns a
list of intents: dicts with market, side ("yes"/"no"), count (contracts), limit (dollars,
a string such as "0.4500") and an optional reason. `market_done` calls `on_market_done` if the
class has it. Standard library only. Anything the plugin prints to stdout would corrupt the
protocol, so stdout is taken over by the host and the plugin's prints go to stderr.
"""

import importlib
import json
import sys
import traceback

PROTOCOL = "run_live.plugin/v1"


def main():
    out = sys.stdout
    sys.stdout = sys.stderr  # a plugin's print() must not reach the protocol stream

    def send(obj):
        out.write(json.dumps(obj, separators=(",", ":")) + "\n")
        out.flush()

    strategy = None
    for raw in sys.stdin:
        try:
            msg = json.loads(raw)
        except ValueError as e:
            send({"type": "error", "message": "host: not JSON: %s" % e})
            continue
        kind = msg.get("type")
        try:
            if kind == "hello":
                if msg.get("protocol") != PROTOCOL:
                    send({"type": "error", "message": "host speaks %s, runner %r" % (PROTOCOL, msg.get("protocol"))})
                    return
                module = importlib.import_module(msg["module"])
                cls = getattr(module, msg["class"])
                strategy = cls(**(msg.get("params") or {}))
                send({"type": "ready", "protocol": PROTOCOL})
            elif kind == "line":
                intents = strategy.on_line(msg["line"], msg["ctx"], msg["now_ms"]) or []
                send({"type": "intents", "intents": [dict(i) for i in intents]})
            elif kind == "market_done":
                done = getattr(strategy, "on_market_done", None)
                if done is not None:
                    done(msg["market"])
            else:
                send({"type": "error", "message": "host: unknown message type %r" % kind})
        except Exception as e:  # report, and let the runner decide
            traceback.print_exc(file=sys.stderr)
            send({"type": "error", "message": "%s: %s" % (type(e).__name__, e)})


if __name__ == "__main__":
    main()
