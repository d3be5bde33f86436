-- Events per calendar year across three domains (UNION ALL).
WITH events AS (
  SELECT 'condition' AS domain, condition_start_date AS event_date FROM condition_occurrence
  UNION ALL
  SELECT 'drug' AS domain, drug_exposure_start_date AS event_date FROM drug_exposure
  UNION ALL
  SELECT 'measurement' AS domain, measurement_date AS event_date FROM measurement
)
SELECT domain,
       CAST(EXTRACT(YEAR FROM event_date) AS INTEGER) AS year,
       COUNT(*) AS events
FROM events
GROUP BY domain, CAST(EXTRACT(YEAR FROM event_date) AS INTEGER)
