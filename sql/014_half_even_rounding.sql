-- Banker's rounding in SQL, so the metered domains priced in PostgreSQL round exactly as
-- releve.quantize_quantity / quantize_money do in Python (Decimal.quantize, ROUND_HALF_EVEN).
-- PostgreSQL's round(numeric, n) rounds half away from zero: the two differ only on an exact tie
-- whose last kept digit is even, where half-even keeps the truncated value.

CREATE FUNCTION finops.round_half_even(value numeric, places integer) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE
    WHEN abs(value - trunc(value, places)) * power(10::numeric, places) = 0.5
         AND mod(trunc(value, places) * power(10::numeric, places), 2) = 0
        THEN trunc(value, places)
    ELSE round(value, places)
END;

-- numerator / denominator rounded half-even to `places` decimals from the exact quotient (no
-- intermediate rounding of the division): the average of a month's dumps or nights.
CREATE FUNCTION finops.divide_half_even(numerator numeric, denominator numeric, places integer)
RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (
    WITH scaled AS (
        SELECT numerator * power(10::numeric, places) * sign(denominator) AS n, abs(denominator) AS d
    ), parts AS (
        SELECT div(n, d) AS q, mod(n, d) AS r, d FROM scaled
    )
    SELECT trunc(
        (q + CASE
                 WHEN 2 * abs(r) > d OR (2 * abs(r) = d AND mod(q, 2) <> 0) THEN sign(r)
                 ELSE 0
             END) / power(10::numeric, places),
        places)
    FROM parts
);
