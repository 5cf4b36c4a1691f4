"""The coupon wallet: coupons, transfers, uses, bulk issues, draw tickets, and the reserving of
perks' stock, allowances and codes. Other features use ``services.rewards.wallet.wallet``."""
