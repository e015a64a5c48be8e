-- description: Every customer's net spend (paid totals minus refunds) and tier: Bronze below 500.00, Silver below 2000.00, Gold from 2000.00.
-- params:
-- The thresholds are the engine's defaults (engine::Tiers); copy this file to use your own.
WITH spend AS (
    SELECT o.customer_id,
           CAST(COUNT(*) AS BIGINT) AS orders,
           CAST(SUM(CASE WHEN o.paid_at IS NULL THEN 0
                         ELSE o.total_cents - o.refunded_cents
                              - CASE WHEN o.status = 'CANCELLED' THEN o.refund_due_cents ELSE 0 END
                    END) AS BIGINT) AS spend_cents
    FROM orders o
    GROUP BY o.customer_id
)
SELECT c.customer_id,
       c.name,
       COALESCE(s.orders, 0) AS orders,
       COALESCE(s.spend_cents, 0) AS spend_cents,
       CASE WHEN COALESCE(s.spend_cents, 0) >= 200000 THEN 'Gold'
            WHEN COALESCE(s.spend_cents, 0) >= 50000 THEN 'Silver'
            ELSE 'Bronze' END AS tier
FROM customers c
LEFT JOIN spend s ON s.customer_id = c.customer_id
ORDER BY spend_cents DESC, c.customer_id
