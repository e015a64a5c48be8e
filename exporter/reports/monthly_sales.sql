-- description: Units and revenue of delivered orders per month (by delivered_at, UTC) and SKU.
-- params: from, to
-- Revenue is quantity × unit price at order time, before order-level discount and shipping.
SELECT date_trunc('month', o.delivered_at) AS month,
       l.sku,
       CAST(SUM(l.quantity) AS BIGINT) AS units,
       CAST(SUM(l.quantity * l.unit_price_cents) AS BIGINT) AS revenue_cents
FROM orders o
JOIN order_lines l ON l.order_id = o.order_id
WHERE o.delivered_at >= {{from}} AND o.delivered_at < {{to}}
GROUP BY date_trunc('month', o.delivered_at), l.sku
ORDER BY month, l.sku
