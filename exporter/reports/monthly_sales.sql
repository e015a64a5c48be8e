-- description: Units and revenue of delivered orders per month (by delivered_at, UTC) and SKU.
-- params: from, to
-- Revenue is quantity × unit price at order time, before order-level discount and shipping.
-- From `sales` (one row per delivered order line, its UTC month precomputed): no join.
SELECT s.delivered_month AS month,
       s.sku,
       CAST(SUM(s.quantity) AS BIGINT) AS units,
       CAST(SUM(s.quantity * s.unit_price_cents) AS BIGINT) AS revenue_cents
FROM sales s
WHERE s.delivered_at >= {{from}} AND s.delivered_at < {{to}}
GROUP BY s.delivered_month, s.sku
ORDER BY month, s.sku
