-- description: Current on-hand, reserved and available units of every SKU, with its stock status.
-- params:
SELECT s.sku,
       p.name,
       s.on_hand,
       s.reserved,
       s.available,
       s.reorder_level,
       CASE WHEN s.available = 0 THEN 'OUT_OF_STOCK'
            WHEN s.available < s.reorder_level THEN 'LOW_STOCK'
            ELSE 'IN_STOCK' END AS status
FROM stock_levels s
LEFT JOIN products p ON p.sku = s.sku
ORDER BY s.sku
