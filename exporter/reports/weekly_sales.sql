-- description: Delivered orders, units and revenue per ISO week (Monday start, by delivered_at, UTC).
-- params: from, to
SELECT date_trunc('week', o.delivered_at) AS week,
       CAST(COUNT(DISTINCT o.order_id) AS BIGINT) AS orders,
       CAST(SUM(l.quantity) AS BIGINT) AS units,
       CAST(SUM(l.quantity * l.unit_price_cents) AS BIGINT) AS revenue_cents
FROM orders o
JOIN order_lines l ON l.order_id = o.order_id
WHERE o.delivered_at >= {{from}} AND o.delivered_at < {{to}}
GROUP BY date_trunc('week', o.delivered_at)
ORDER BY week
