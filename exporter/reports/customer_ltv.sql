-- description: Lifetime value (paid totals minus refunds) and order frequency per customer: orders, average order, first and last order.
-- params: from, to, limit
SELECT o.customer_id,
       CAST(COUNT(*) AS BIGINT) AS orders,
       CAST(SUM(o.total_cents - o.refunded_cents) AS BIGINT) AS ltv_cents,
       CAST((SUM(o.total_cents) - SUM(o.total_cents) % COUNT(*)) / COUNT(*) AS BIGINT) AS average_order_cents,
       MIN(o.created_at) AS first_order_at,
       MAX(o.created_at) AS last_order_at
FROM orders o
WHERE o.paid_at IS NOT NULL
  AND o.status <> 'CANCELLED'
  AND o.created_at >= {{from}} AND o.created_at < {{to}}
GROUP BY o.customer_id
ORDER BY ltv_cents DESC, o.customer_id
LIMIT {{limit}}
