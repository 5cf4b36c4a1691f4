"""The coupon wallet: coupons, transfers, uses, bulk issues, draw tickets, and the reserving of
perks' stock, allowances and codes. Other features use ``services.rewards.wallet.wallet``."""

# Transitional: team-buy still calls ``services.rewards.wallet.issue`` / ``.perk_exists`` from
# when the wallet was one module. Drop these two names once it imports the ``wallet`` module.
from services.rewards.wallet.wallet import issue, perk_exists

__all__ = ["issue", "perk_exists"]
