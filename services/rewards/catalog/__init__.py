"""The perk catalog: perks, coupon-code pools, redemptions and the Redis stock mirror."""
