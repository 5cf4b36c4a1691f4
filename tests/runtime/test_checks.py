"""The schema's pattern checks are written without bounded repeats (runtime migration 0004 and
its kin in points, rewards and tiers), and each accepts exactly what the check it replaced
accepted."""

from __future__ import annotations

import random

from services.runtime.resources import Resources

# Each replaced check: its table, its name, the column, and the expression it had.
REPLACED = [
    ("fuli.tenants", "tenants_tenant_id_check", "tenant_id",
     "tenant_id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'"),
    ("fuli.idempotency", "idempotency_key_check", "key", "key ~ '^[A-Za-z0-9._:-]{1,128}$'"),
    ("points.default_rules", "default_rules_action_check", "action",
     "action ~ '^[a-z][a-z0-9_]{0,63}$'"),
    ("points.rules", "rules_action_check", "action", "action ~ '^[a-z][a-z0-9_]{0,63}$'"),
    ("rewards.perks", "perks_sku_check", "sku", "sku ~ '^[A-Za-z0-9._:-]{1,128}$'"),
    ("tiers.member_tags", "member_tags_tag_check", "tag", "tag ~ '^[a-z0-9_:-]{1,64}$'"),
    ("tiers.member_sources", "member_sources_channel_check", "channel",
     "('source:' || channel) ~ '^[a-z0-9_:-]{1,64}$'"),
]
# Characters every one of the checks accepts somewhere, and some none of them does.
ALPHABET = "az09AZ._:-" + "!/ \n\té中"


def candidates() -> list[str]:
    """Values around every length limit (0-130 characters, and just past 128 + 7), each of
    one accepted character, and random mixes of accepted and refused ones."""
    rng = random.Random(20261206)
    values = [c * n for c in "a0A_-.:" for n in (0, 1, 2, 56, 57, 58, 62, 63, 64, 65, 127,
                                                 128, 129)]
    values += ["a" + c * 62 for c in "_-0"] + ["source:" + "a" * 57, "\n", "a\n", "\na"]
    for _ in range(3000):
        length = rng.choice([rng.randint(0, 8), rng.randint(55, 66), rng.randint(120, 136)])
        pool = ALPHABET if rng.random() < 0.3 else ALPHABET[:10]
        values.append("".join(rng.choice(pool) for _ in range(length)))
    return values


async def test_no_pattern_check_has_a_bounded_repeat(resources: Resources) -> None:
    # PostgreSQL builds a pattern's automaton again on every match, and a bounded repeat
    # multiplies its states: the idempotency key's check took 22 us a key. (A function a
    # check calls is not looked into: tiers.is_escrow's {40} runs only for ids that start
    # like an escrow member's.)
    bounded = await resources.pool.fetch(
        "SELECT conrelid::regclass::text AS table_name, conname FROM pg_constraint"
        " WHERE contype = 'c' AND pg_get_constraintdef(oid) ~ '\\{[0-9]+(,[0-9]*)?\\}'")
    assert [tuple(r) for r in bounded] == []


async def test_each_rewritten_check_accepts_what_the_old_one_did(resources: Resources) -> None:
    values = candidates()
    for table, name, column, old in REPLACED:
        definition = await resources.pool.fetchval(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = $1::regclass AND conname = $2", table, name)
        assert definition is not None and definition.startswith("CHECK "), (table, name)
        rows = await resources.pool.fetch(
            f"SELECT {column} AS value, {old} AS old, {definition.removeprefix('CHECK ')} AS new"
            f" FROM unnest($1::text[]) AS v({column})", values)
        differ = [(r["value"], r["old"], r["new"]) for r in rows if r["old"] != r["new"]]
        assert differ == [], (name, differ[:5])
        # Both outcomes occur: the values reach past each limit from inside it.
        assert {r["old"] for r in rows} == {True, False}, name
