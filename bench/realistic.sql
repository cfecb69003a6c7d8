-- A data set that dumps like an application's database, not like pgbench's repeated rows:
-- prose from a word list, md5 tokens, e-mail addresses, numerics, timestamps, jsonb, and about
-- 5% of the dump as random bytea. Its plain dump compresses about 3-5x with zstd -3.
-- Run with psql -v rows=N (about 400 bytes of dump per row: 2,600,000 rows ≈ 1 GB).
\set ON_ERROR_STOP on
DROP TABLE IF EXISTS orders, sentences, words;

-- 4,096 made-up words from syllables, in a table so that rows pick them by number.
CREATE TABLE words AS
SELECT i AS id,
       (ARRAY['ka','lo','mi','ne','ru','sa','ti','vo','ber','don','gal','hen','jor','kel',
              'lin','mar','nor','pel','quin','ros','sel','tam','ul','ven','wil','xan','yor',
              'zed','a','e','o','u','str','ph','th','ch'])[1 + (h % 36)]
       || (ARRAY['ka','lo','mi','ne','ru','sa','ti','vo','ber','don','gal','hen','jor','kel',
              'lin','mar','nor','pel','quin','ros','sel','tam','ul','ven','wil','xan','yor',
              'zed','a','e','o','u','str','ph','th','ch'])[1 + ((h / 36) % 36)]
       || CASE WHEN h % 3 = 0 THEN (ARRAY['ing','ed','er','s','ly','tion','al','ment'])[1 + ((h / 1296) % 8)] ELSE '' END
       AS w
FROM (SELECT i, abs(hashint4(i * 7919)) AS h FROM generate_series(0, 4095) i) s;

-- 200,000 sentences of 6 to 20 words (about 16 MB, far beyond zstd's window at level 3, so
-- a repeated sentence is rarely found again by the compressor).
CREATE TABLE sentences AS
SELECT s.id, string_agg(CASE WHEN k.k = 1 THEN initcap(w.w) ELSE w.w END, ' ' ORDER BY k.k) || '.' AS t
FROM generate_series(0, 199999) s(id)
CROSS JOIN LATERAL generate_series(1, 6 + abs(hashint4(s.id)) % 15) k(k)
-- common words far more often than rare ones, as in prose (a product of three uniform picks)
JOIN words w ON w.id = (abs(hashint4(s.id * 31 + k.k)) % 4096)::bigint
                     * (abs(hashint4(s.id * 37 + k.k)) % 4096)
                     * (abs(hashint4(s.id * 41 + k.k)) % 4096) / (4096 * 4096)
GROUP BY s.id;
CREATE UNIQUE INDEX ON sentences (id);

CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer text NOT NULL,
    email text NOT NULL,
    token text,
    status text NOT NULL,
    amount numeric(12, 2) NOT NULL,
    quantity integer NOT NULL,
    ratio numeric(6, 4) NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz,
    note text,
    attrs jsonb NOT NULL,
    attachment bytea
);

INSERT INTO orders
SELECT g,
       initcap(w1.w) || ' ' || initcap(w2.w),
       w1.w || '.' || w2.w || (g % 1000) || '@' || w3.w || '.example',
       CASE WHEN g % 2 = 0 THEN md5(g::text || 'token') END,
       (ARRAY['new','paid','shipped','delivered','returned','cancelled'])[1 + g % 6],
       round((random() * 5000)::numeric, 2),
       1 + (random() * 20)::int,
       round(random()::numeric, 4),
       date_trunc('second', timestamptz '2020-01-01' + random() * interval '1700 days'),
       CASE WHEN g % 4 = 0 THEN NULL ELSE date_trunc('second', timestamptz '2024-01-01' + random() * interval '600 days') END,
       s1.t || CASE WHEN g % 3 = 0 THEN ' ' || s2.t ELSE '' END,
       jsonb_build_object('channel', (ARRAY['web','app','shop','phone'])[1 + g % 4],
                          'items', 1 + g % 9,
                          'coupon', CASE WHEN g % 7 = 0 THEN upper(substr(md5(g::text), 1, 8)) END,
                          'score', round((random() * 100)::numeric, 1),
                          'tags', jsonb_build_array(w3.w, w2.w),
                          'shipping', jsonb_build_object(
                              'street', initcap(w2.w) || ' Street ' || (1 + g % 180),
                              'city', initcap((SELECT w FROM words WHERE id = g % 64)),
                              'zip', lpad((g % 99991)::text, 5, '0'),
                              'country', (ARRAY['DE','FR','NL','US','GB','ES','IT','PL'])[1 + g % 8],
                              'express', g % 5 = 0)),
       -- about 5% of the dump's bytes: 48 random bytes on one row in four
       CASE WHEN g % 4 = 0 THEN decode(md5(random()::text) || md5(random()::text) || md5(random()::text), 'hex') END
FROM generate_series(1, :rows) g
JOIN words w1 ON w1.id = abs(hashint4(g)) % 4096
JOIN words w2 ON w2.id = abs(hashint4(g + 1)) % 4096
JOIN words w3 ON w3.id = abs(hashint4(g + 2)) % 4096
JOIN sentences s1 ON s1.id = abs(hashint4(g * 3)) % 200000
JOIN sentences s2 ON s2.id = abs(hashint4(g * 5)) % 200000;

DROP TABLE sentences, words;
