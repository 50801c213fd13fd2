"""PostgreSQL advisory lock keys, in one place so no two features pick the same number.

Keys are (namespace, key) pairs of int4. Run locks key by `hashtext(run_id)` in their own
namespace; month locks by the month as YYYYMM.
"""

MART_NAMESPACE = 4_617_001
MIGRATIONS_KEY = 1
PUBLISH_KEY = 2

RUN_NAMESPACE = 4_617_002
STAGE_NAMESPACE = 4_617_003
MONTH_NAMESPACE = 4_617_004
