-- description: Units delivered per SKU in the window against current stock (turnover in percent of on-hand), with a reorder recommendation.
-- params: from, to
WITH sold AS (
    SELECT l.sku, CAST(SUM(l.quantity) AS BIGINT) AS units
    FROM orders o
    JOIN order_lines l ON l.order_id = o.order_id
    WHERE o.delivered_at >= {{from}} AND o.delivered_at < {{to}}
    GROUP BY l.sku
)
SELECT s.sku,
       COALESCE(sold.units, 0) AS units_sold,
       s.on_hand,
       s.available,
       CASE WHEN s.on_hand = 0 THEN NULL
            ELSE CAST((COALESCE(sold.units, 0) * 100 - COALESCE(sold.units, 0) * 100 % s.on_hand) / s.on_hand AS BIGINT)
       END AS turnover_pct,
       CASE WHEN s.available < s.reorder_level
            THEN 'reorder ' || CAST(GREATEST(COALESCE(p.reorder_quantity, 0), s.reorder_level - s.available) AS TEXT)
            ELSE 'ok' END AS recommendation
FROM stock_levels s
LEFT JOIN products p ON p.sku = s.sku
LEFT JOIN sold ON sold.sku = s.sku
ORDER BY units_sold DESC, s.sku
