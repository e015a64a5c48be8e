-- description: Approved returns and refunded cents per month of the return's decision (UTC).
-- params: from, to
SELECT date_trunc('month', r.decided_at) AS month,
       CAST(COUNT(*) AS BIGINT) AS returns,
       CAST(SUM(r.units) AS BIGINT) AS units,
       CAST(SUM(r.refund_cents) AS BIGINT) AS refund_cents
FROM returns r
WHERE r.status = 'APPROVED'
  AND r.decided_at >= {{from}} AND r.decided_at < {{to}}
GROUP BY date_trunc('month', r.decided_at)
ORDER BY month
