-- An outbox row's event id from PostgreSQL's random() instead of gen_random_uuid(). The
-- embedded server's build has no OpenSSL, and without it gen_random_uuid() opens and reads
-- /dev/urandom for every id: 3-6 us a row, on every event of every path (an earned event, a
-- stratification's million TierChanged rows). This one costs under 1 us.
--
-- It is a version-4 UUID of 122 random bits like gen_random_uuid()'s. random() is seeded from
-- a strong random source on its first use in each session (PostgreSQL 15 on), so sessions
-- draw independent sequences; fuli never calls setseed(), which would make a session's
-- sequence repeat. Event ids need to be unique, not unpredictable.
CREATE FUNCTION fuli.new_event_id() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    -- Two 64-bit halves of 52 + 12 random bits each; then the version nibble (4) in the first
    -- and the variant bits (10) at the top of the second, as RFC 9562 places them.
    SELECT encode(
        int8send(((random() * 4503599627370496)::bigint << 12 | (random() * 4096)::bigint)
                 & ~61440 | 16384)
        || int8send(((random() * 4503599627370496)::bigint << 12 | (random() * 4096)::bigint)
                    & 4611686018427387903 | -9223372036854775808),
        'hex')::uuid;
$$;

ALTER TABLE fuli.outbox ALTER COLUMN event_id SET DEFAULT fuli.new_event_id();
