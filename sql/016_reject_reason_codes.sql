-- Reject reasons as data: every reject carries a stable code (finops.reject_reason, the list of
-- finops_dagster/reject_reasons.py) next to its details (the `reason` column: the variable part,
-- the class, the field, the value as written). Rejects stored before this file get the code their
-- reason's wording names, or LEGACY_UNCLASSIFIED; a new reject cannot be written without a code
-- the table lists. The read API sees the published rejects through a view, without their payloads.

CREATE TABLE finops.reject_reason (
    reason_code text PRIMARY KEY CHECK (reason_code ~ '^[A-Z][A-Z_]*$'),
    description text NOT NULL
);

COMMENT ON TABLE finops.reject_reason IS
    'Why a record could not become a relevé: the stable codes of finops.releve_reject.reason_code.';

INSERT INTO finops.reject_reason (reason_code, description) VALUES
    ('NO_RATE', 'no rate card of the product is valid in the month'),
    ('UNKNOWN_PRODUCT', 'a measure of a product neither in the catalog nor in the source''s product mapping'),
    ('MALFORMED_RECORD', 'a source entry (API record, document, report row) missing a field or holding a value of the wrong type'),
    ('NEGATIVE_QUANTITY', 'a quantity or usage below zero, which has no meaning for usage'),
    ('INVALID_QUANTITY', 'a numeric field that is missing, not a number, NaN, infinite or implausibly large'),
    ('UNKNOWN_CI_CLASS', 'a CMDB document of a class that is missing or not billable (not in cmdb_classes.csv)'),
    ('MISSING_CI_ID', 'a CMDB document without sys_id, which cannot be tied to a CI'),
    ('DUPLICATE_DOCUMENT', 'the same CI more than once in one dump (the first document counts)'),
    ('UNDATED_DOCUMENT', 'a CMDB document whose dump time (_ingested_at) cannot be read'),
    ('MALFORMED_ROW', 'a bill file line that cannot be split against the header (ragged, unclosed quote, bad encoding, NUL byte, cut at the end of the file)'),
    ('MISSING_COST', 'a bill row or charge without a cost'),
    ('INVALID_AMOUNT', 'a cost, credit or quantity of a bill that is not a number'),
    ('AMOUNT_OUT_OF_RANGE', 'an amount beyond what one line item may carry'),
    ('INVALID_CURRENCY', 'a billing currency that is missing or not an ISO 4217 code'),
    ('INVALID_PERIOD', 'a charge date that is missing, unreadable or outside the plausible window or month'),
    ('NO_EXCHANGE_RATE', 'a charge in a currency the month has no exchange rate for'),
    ('LEGACY_UNCLASSIFIED', 'a reject stored before reason codes existed whose reason matched no code');

ALTER TABLE finops.releve_reject ADD COLUMN reason_code text REFERENCES finops.reject_reason (reason_code);

COMMENT ON COLUMN finops.releve_reject.reason_code IS 'Why (finops.reject_reason); `reason` holds the details.';
COMMENT ON COLUMN finops.releve_reject.reason IS 'The details of the reject: what, where, the value as written.';

-- The codes the wordings of the rejects written so far name, first match wins.
UPDATE finops.releve_reject SET reason_code = CASE
    WHEN reason LIKE 'no rate card for %' THEN 'NO_RATE'
    WHEN reason LIKE 'unknown product %' THEN 'UNKNOWN_PRODUCT'
    WHEN reason LIKE 'no exchange rate %' THEN 'NO_EXCHANGE_RATE'
    WHEN reason LIKE 'unknown CI class %' OR reason LIKE 'sys_class_name: %' THEN 'UNKNOWN_CI_CLASS'
    WHEN reason LIKE 'document without sys_id%' THEN 'MISSING_CI_ID'
    WHEN reason LIKE 'duplicate sys_id within a dump%' THEN 'DUPLICATE_DOCUMENT'
    WHEN reason LIKE '\_ingested\_at %' THEN 'UNDATED_DOCUMENT'
    WHEN domain_id = 'open_legacy' AND reason ~ '^[^:;]+: negative \(' THEN 'NEGATIVE_QUANTITY'
    WHEN domain_id = 'open_legacy'
     AND reason ~ '^[^:;]+: (missing|empty|not a number|NaN|infinite|implausibly large)' THEN 'INVALID_QUANTITY'
    WHEN domain_id = 'public_cloud' AND (
         reason LIKE 'the file ends inside this row%' OR reason LIKE 'the row holds a NUL byte%'
      OR reason LIKE 'the row has % columns than the header%' OR reason LIKE 'a value holds a quote%'
      OR reason LIKE 'the line is longer than%' OR reason LIKE 'the row holds bytes that are not UTF-8%')
        THEN 'MALFORMED_ROW'
    WHEN domain_id = 'public_cloud' AND (
         reason LIKE 'row does not have the % columns%' OR reason LIKE 'group keys missing%'
      OR reason LIKE 'tag group key %') THEN 'MALFORMED_RECORD'
    WHEN domain_id = 'public_cloud' AND reason LIKE '% is beyond what one line item may carry%'
        THEN 'AMOUNT_OUT_OF_RANGE'
    WHEN domain_id = 'public_cloud' AND (
         reason ~ '^\S+ is empty' OR reason LIKE 'metric % missing%' OR reason LIKE 'cost missing%'
      OR reason ~ '^\S+ amount missing') THEN 'MISSING_COST'
    WHEN domain_id = 'public_cloud' AND (
         reason LIKE '% is not an ISO 4217 code%' OR reason LIKE 'currency missing%'
      OR reason LIKE '% unit (the currency) missing%') THEN 'INVALID_CURRENCY'
    WHEN domain_id = 'public_cloud' AND (
         reason LIKE '% is not a date%' OR reason LIKE '% is not an ISO 8601 date%'
      OR reason LIKE '% is more than a year from %' OR reason LIKE '% is outside the plausible window%'
      OR reason LIKE 'usage date %') THEN 'INVALID_PERIOD'
    WHEN domain_id = 'public_cloud' AND (
         reason LIKE '% is not a number%' OR reason LIKE '% is not a decimal string%'
      OR reason LIKE '% is not finite%' OR reason LIKE '% has an amount that is not a number%')
        THEN 'INVALID_AMOUNT'
    WHEN domain_id IN ('private_cloud', 'native')
     AND reason ~ '^[^:;]+: negative \([^)]*\)(; [^:;]+: negative \([^)]*\))*( \(\d+ night\(s\)\))?$'
        THEN 'NEGATIVE_QUANTITY'
    WHEN domain_id IN ('private_cloud', 'native') THEN 'MALFORMED_RECORD'
    ELSE 'LEGACY_UNCLASSIFIED'
END;

ALTER TABLE finops.releve_reject ALTER COLUMN reason_code SET NOT NULL;

-- The API's listing: a month's rejects, by reason.
CREATE INDEX releve_reject_month_reason ON finops.releve_reject (period_month, reason_code, domain_id);


-- =====================================================================================
-- What the API may know of the rejects
-- =====================================================================================

-- The rejects of the published loads: for each domain-month, those of the run whose load was
-- published (the publish removes the other runs' rejects, except those of a later run not yet
-- published, which this view leaves out). Without the raw payload: a source record as written is
-- the pipeline's to keep, not the API's to serve. A plain view runs with its owner's rights, so the
-- reader sees these columns without any access to releve_reject or domain_load themselves.
CREATE VIEW finops.published_reject AS
SELECT j.reject_id, j.domain_id, j.period_month, j.reason_code, j.reason AS details, j.source, j.source_ref,
       j.usage_unit, j.usage_quantity, j.cost, j.currency, j.source_record_count, j.run_id
FROM finops.releve_reject AS j
JOIN finops.domain_load AS l
  ON l.run_id = j.run_id
 AND l.domain_id = j.domain_id
 AND l.period_month = j.period_month
 AND l.published_at IS NOT NULL;

COMMENT ON VIEW finops.published_reject IS
    'What could not become a relevé in the published loads, and why (a code and its details)?';

GRANT SELECT ON finops.published_reject, finops.reject_reason TO finops_reader;
