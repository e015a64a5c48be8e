-- description: The best-selling products by revenue of delivered orders (ties by units, then SKU).
-- params: from, to, limit
SELECT l.sku,
       p.name,
       CAST(SUM(l.quantity) AS BIGINT) AS units,
       CAST(SUM(l.quantity * l.unit_price_cents) AS BIGINT) AS revenue_cents
FROM orders o
JOIN order_lines l ON l.order_id = o.order_id
LEFT JOIN products p ON p.sku = l.sku
WHERE o.delivered_at >= {{from}} AND o.delivered_at < {{to}}
GROUP BY l.sku, p.name
ORDER BY revenue_cents DESC, units DESC, l.sku
LIMIT {{limit}}
