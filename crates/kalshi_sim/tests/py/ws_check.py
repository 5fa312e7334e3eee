"""An independent WebSocket client (the `websockets` package): subscribes to
orderbook_delta and reports the snapshot and the sequence numbers it saw, as JSON.

usage: ws_check.py WS_URL KEY_ID KEY_PEM TICKER N_DELTAS
"""
import asyncio
import json
import sys

import websockets

from kalshi_sign import load_private_key, request_headers


async def main():
    url, key_id, pem, ticker, n = sys.argv[1:6]
    n = int(n)
    key = load_private_key(pem)
    headers = request_headers(key, key_id, "GET", "/trade-api/ws/v2")
    major = int(websockets.__version__.split(".")[0])
    kwargs = {"additional_headers": headers} if major >= 14 else {"extra_headers": headers}
    async with websockets.connect(url, **kwargs) as ws:
        await ws.send(json.dumps({
            "id": 1, "cmd": "subscribe",
            "params": {"channels": ["orderbook_delta"], "market_tickers": [ticker]},
        }))
        subscribed, snapshot, deltas, seqs = None, None, [], []
        while len(deltas) < n:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if msg["type"] == "subscribed":
                subscribed = msg
            elif msg["type"] == "orderbook_snapshot":
                snapshot = msg
                seqs.append(msg["seq"])
            elif msg["type"] == "orderbook_delta":
                if snapshot is None:
                    raise SystemExit("delta before snapshot")
                deltas.append(msg)
                seqs.append(msg["seq"])
        print(json.dumps({
            "subscribed_sid": subscribed["msg"]["sid"] if subscribed else None,
            "snapshot": snapshot,
            "deltas": len(deltas),
            "seqs": seqs,
            "contiguous": all(b == a + 1 for a, b in zip(seqs, seqs[1:])),
            "sids": sorted({m["sid"] for m in deltas}),
            "first_delta": deltas[0]["msg"],
        }))


if __name__ == "__main__":
    asyncio.run(main())
