-- description: Every product ranked by revenue of delivered orders (window functions), with its share of revenue in basis points.
-- params: from, to
WITH revenue AS (
    SELECT l.sku,
           CAST(SUM(l.quantity) AS BIGINT) AS units,
           CAST(SUM(l.quantity * l.unit_price_cents) AS BIGINT) AS revenue_cents
    FROM orders o
    JOIN order_lines l ON l.order_id = o.order_id
    WHERE o.delivered_at >= {{from}} AND o.delivered_at < {{to}}
    GROUP BY l.sku
)
, total AS (
    SELECT sku, units, revenue_cents,
           CAST(SUM(revenue_cents) OVER () AS BIGINT) AS all_cents
    FROM revenue
)
SELECT CAST(RANK() OVER (ORDER BY revenue_cents DESC) AS BIGINT) AS rank,
       sku,
       units,
       revenue_cents,
       CASE WHEN all_cents = 0 THEN 0
            ELSE CAST((revenue_cents * 10000 - revenue_cents * 10000 % all_cents) / all_cents AS BIGINT)
       END AS share_bps
FROM total
ORDER BY rank, sku
