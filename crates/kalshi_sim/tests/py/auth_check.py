"""An independent REST client: authenticates with requests + cryptography and reports what
the simulator answered, as JSON on stdout.

usage: auth_check.py REST_BASE KEY_ID KEY_PEM WRONG_KEY_PEM TICKER
"""
import json
import sys
from urllib.parse import urlparse

import requests

from kalshi_sign import load_private_key, request_headers


def main():
    base, key_id, pem, wrong_pem, ticker = sys.argv[1:6]
    key = load_private_key(pem)
    wrong = load_private_key(wrong_pem)
    prefix = urlparse(base).path  # /trade-api/v2, signed as part of the path
    out = {}

    def get(k, path):
        return requests.get(base + path, headers=request_headers(k, key_id, "GET", prefix + path), timeout=30)

    r = get(key, "/portfolio/balance")
    out["ok_status"], out["ok_body"] = r.status_code, r.json()
    r = get(key, "/portfolio/orders?limit=5")
    out["query_status"] = r.status_code
    r = get(wrong, "/portfolio/balance")
    out["wrong_status"], out["wrong_body"] = r.status_code, r.json()
    r = requests.get(base + "/portfolio/balance", timeout=30)
    out["unsigned_status"] = r.status_code
    order = {
        "ticker": ticker, "client_order_id": "py-1", "side": "bid", "count": "2.00",
        "price": "0.0500", "time_in_force": "good_till_canceled",
        "self_trade_prevention_type": "taker_at_cross",
    }
    path = "/portfolio/events/orders"
    r = requests.post(base + path, json=order, headers=request_headers(key, key_id, "POST", prefix + path), timeout=30)
    out["order_status"], out["order_body"] = r.status_code, r.json()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
