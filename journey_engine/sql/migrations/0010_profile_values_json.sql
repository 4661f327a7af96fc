-- Profile values are written for every event a template counts, and PostgreSQL spent more time parsing
-- them as jsonb (about 5 µs a row, keys sorted, a binary tree built) than inserting the row. Nothing reads
-- into them in SQL: the engine writes and reads them whole. So:
-- - `vals` is json (stored as sent, checked but not converted, and read back as stored);
-- - each attribute's value is an array, `[value, events, error]`, with the events' seqs as a fourth item
--   for a verbose attribute, instead of an object with these keys (profiles/compute.py `to_json`).
-- Rows written before keep their values, converted here; a row holding anything but an array (never
-- written by the engine) becomes empty, which reads as "to be computed".
CREATE FUNCTION je_compact_profile_values(vals jsonb) RETURNS json
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(
        json_agg(
            CASE WHEN a ? 'seqs' THEN json_build_array(a -> 'value', a -> 'events', a -> 'error', a -> 'seqs')
                 ELSE json_build_array(a -> 'value', a -> 'events', a -> 'error') END
            ORDER BY n),
        '[]'::json)
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(vals) = 'array' THEN vals ELSE '[]' END)
        WITH ORDINALITY AS e (a, n)
$$;
ALTER TABLE profile_values ALTER COLUMN vals TYPE json USING je_compact_profile_values(vals);
DROP FUNCTION je_compact_profile_values(jsonb);
