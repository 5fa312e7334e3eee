"""Request signing exactly as Kalshi's starter code does it: RSA-PSS over
timestamp_ms + METHOD + path (no query string), SHA-256, MGF1(SHA-256), salt length =
digest length, standard base64."""
import base64
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def load_private_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def sign_pss_text(private_key, text):
    message = text.encode("utf-8")
    signature = private_key.sign(
        message,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
        hashes.SHA256(),
    )
    return base64.b64encode(signature).decode("utf-8")


def request_headers(private_key, key_id, method, path):
    timestamp = str(int(time.time() * 1000))
    path_without_query = path.split("?")[0]
    msg_string = timestamp + method + path_without_query
    return {
        "KALSHI-ACCESS-KEY": key_id,
        "KALSHI-ACCESS-SIGNATURE": sign_pss_text(private_key, msg_string),
        "KALSHI-ACCESS-TIMESTAMP": timestamp,
    }
