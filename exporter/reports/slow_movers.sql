-- description: Products with at most max_units (default 0: none) delivered in the window, least sold first.
-- params: from, to, max_units
WITH sold AS (
    SELECT l.sku, CAST(SUM(l.quantity) AS BIGINT) AS units
    FROM orders o
    JOIN order_lines l ON l.order_id = o.order_id
    WHERE o.delivered_at >= {{from}} AND o.delivered_at < {{to}}
    GROUP BY l.sku
)
SELECT p.sku,
       p.name,
       COALESCE(sold.units, 0) AS units_sold,
       COALESCE(s.on_hand, 0) AS on_hand
FROM products p
LEFT JOIN sold ON sold.sku = p.sku
LEFT JOIN stock_levels s ON s.sku = p.sku
WHERE COALESCE(sold.units, 0) <= {{max_units}}
ORDER BY units_sold, p.sku
