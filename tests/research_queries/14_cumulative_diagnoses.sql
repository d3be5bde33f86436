-- New hypertension diagnoses per year and the running total (SUM() OVER).
WITH first_htn AS (
  SELECT person_id, MIN(condition_start_date) AS diagnosed
  FROM condition_occurrence
  WHERE condition_concept_id = 320128
  GROUP BY person_id
),
per_year AS (
  SELECT CAST(EXTRACT(YEAR FROM diagnosed) AS INTEGER) AS year, COUNT(*) AS new_cases
  FROM first_htn
  GROUP BY 1
)
SELECT year,
       new_cases,
       SUM(new_cases) OVER (ORDER BY year ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
         AS cumulative_cases
FROM per_year
