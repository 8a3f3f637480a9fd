"""AWS through boto3: instance-type facts, live prices, and finding instances left behind (sweep).

boto3 is imported inside functions only: `inferform plan` must not pay ~0.3 s for it when no AWS call is made.
"""
