-- description: Open orders (PENDING, PAID or SHIPPED), oldest first, with their age-defining timestamps.
-- params: from, to
SELECT o.order_id,
       o.customer_id,
       o.status,
       o.created_at,
       o.paid_at,
       o.shipped_at,
       o.total_cents
FROM orders o
WHERE o.status IN ('PENDING', 'PAID', 'SHIPPED')
  AND o.created_at >= {{from}} AND o.created_at < {{to}}
ORDER BY o.created_at, o.order_id
