"""The synthetic demo catalog (real encoded videos, multilingual titles) and its evaluation against ground
truth. The top layer: it may import anything in ``ml/``; nothing imports it but the CLI and tests.
"""
