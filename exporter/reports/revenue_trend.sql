-- description: Revenue of delivered orders per month or quarter (param period), with the change against the previous period.
-- params: from, to, period
WITH per AS (
    SELECT date_trunc('{{period}}', o.delivered_at) AS period_start,
           CAST(COUNT(*) AS BIGINT) AS orders,
           CAST(SUM(o.total_cents) AS BIGINT) AS revenue_cents
    FROM orders o
    WHERE o.delivered_at >= {{from}} AND o.delivered_at < {{to}}
    GROUP BY date_trunc('{{period}}', o.delivered_at)
)
SELECT period_start AS {{period}},
       orders,
       revenue_cents,
       revenue_cents - LAG(revenue_cents) OVER (ORDER BY period_start) AS change_cents
FROM per
ORDER BY period_start
