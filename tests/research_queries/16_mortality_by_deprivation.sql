-- Deaths and crude mortality by IMD quintile (deciles paired up).
WITH imd AS (
  SELECT person_id, CAST(MAX(value_as_number) AS INTEGER) AS decile
  FROM observation
  WHERE observation_concept_id = 2000000001
  GROUP BY person_id
)
SELECT CASE WHEN imd.decile <= 2 THEN 1 WHEN imd.decile <= 4 THEN 2 WHEN imd.decile <= 6 THEN 3
            WHEN imd.decile <= 8 THEN 4 ELSE 5 END AS quintile,
       COUNT(*) AS persons,
       COUNT(d.person_id) AS deaths,
       1000.0 * COUNT(d.person_id) / COUNT(*) AS deaths_per_1000
FROM imd
LEFT JOIN death d ON d.person_id = imd.person_id
GROUP BY 1
