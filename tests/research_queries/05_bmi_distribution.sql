-- BMI categories (3038553) from each person's latest reading: ROW_NUMBER, CASE.
WITH latest AS (
  SELECT person_id, value_as_number AS bmi,
         ROW_NUMBER() OVER (PARTITION BY person_id
                            ORDER BY measurement_date DESC, measurement_id DESC) AS rn
  FROM measurement
  WHERE measurement_concept_id = 3038553 AND value_as_number IS NOT NULL
)
SELECT CASE WHEN bmi < 18.5 THEN 'underweight'
            WHEN bmi < 25 THEN 'healthy'
            WHEN bmi < 30 THEN 'overweight'
            ELSE 'obese' END AS category,
       COUNT(*) AS persons,
       AVG(bmi) AS mean_bmi
FROM latest
WHERE rn = 1
GROUP BY 1
